package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig tunes leader election; zero values mean the defaults shown.
type LeaderConfig struct {
	// Lease is the name of the Lease object ("weft-control-plane").
	Lease string
	// Identity of this replica (hostname plus a random suffix).
	Identity string
	// LeaseDuration (15s), RenewDeadline (10s) and RetryPeriod (2s) as in
	// client-go's leaderelection.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (c LeaderConfig) withDefaults() LeaderConfig {
	if c.Lease == "" {
		c.Lease = "weft-control-plane"
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		c.Identity = fmt.Sprintf("%s-%s", host, rand.String(6))
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = 2 * time.Second
	}
	return c
}

// leader runs lead while this replica holds the Lease, and tries again
// whenever it loses it, until ctx ends. isLeader reflects the state.
type leader struct {
	cfg      LeaderConfig
	client   kubernetes.Interface
	ns       string
	log      *slog.Logger
	isLeader atomic.Bool
}

func (l *leader) run(ctx context.Context, lead func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: l.cfg.Lease, Namespace: l.ns},
		Client:     l.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   l.cfg.LeaseDuration,
			RenewDeadline:   l.cfg.RenewDeadline,
			RetryPeriod:     l.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            l.cfg.Lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					l.isLeader.Store(true)
					l.log.Info("became leader; writing status", "identity", l.cfg.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() {
					l.isLeader.Store(false)
					l.log.Info("not leader", "identity", l.cfg.Identity)
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}
