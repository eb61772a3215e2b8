package lb_test

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/node-proxy/internal/l7/lb"
)

func ExampleNewPeakEWMA() {
	now := time.Unix(0, 0)
	cfg := lb.Config{
		Choices: 2,                // PeakEwmaLoadBalancer.choice_count
		Decay:   10 * time.Second, // PeakEwmaLoadBalancer.decay
		Now:     func() time.Time { return now },
	}
	addrs := []string{"10.0.0.1:80", "10.0.0.2:80"}
	var p lb.Picker = lb.NewPeakEWMA(addrs, cfg)

	// .1 answers in 5 ms, .2 in 50 ms. The first two picks try each
	// endpoint once (an endpoint with no observation yet costs nothing).
	latency := []time.Duration{5 * time.Millisecond, 50 * time.Millisecond}
	for range 2 {
		i, _ := p.Pick(nil)
		p.Done(i, latency[i])
	}
	i, _ := p.Pick(nil)
	fmt.Println("picked", addrs[i])
	p.Done(i, 5*time.Millisecond)

	// Retry: exclude the endpoint already tried.
	j, _ := p.Pick(func(k int) bool { return k == i })
	fmt.Println("retry on", addrs[j])
	p.Done(j, -1)

	// EDS update: .2 keeps its estimate, .3 is new.
	p = p.Rebuild([]string{"10.0.0.2:80", "10.0.0.3:80"})
	_, est := p.Stats(0)
	fmt.Println("10.0.0.2:80 estimate", est)
	// Output:
	// picked 10.0.0.1:80
	// retry on 10.0.0.2:80
	// 10.0.0.2:80 estimate 50ms
}
