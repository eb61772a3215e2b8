package kube

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cluster is shared by the tests of this package (started by TestMain).
var cluster *Cluster

func TestMain(m *testing.M) { os.Exit(Main(m, &cluster)) }

func skipUnlessLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("!!! SKIPPING %s: the kube-apiserver + etcd harness only runs on Linux (GOOS=%s)", t.Name(), runtime.GOOS)
	}
}

func TestPodBoundTokenReview(t *testing.T) {
	skipUnlessLinux(t)
	c := Require(t, cluster)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cs := c.Clientset()

	const ns, sa, podName, nodeName = "weft-test", "workload", "workload-0", "node-a"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeName:           nodeName, // no scheduler runs
			Containers:         []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}

	token, err := c.ServiceAccountToken(ctx, ns, sa, []string{Audience}, pod)
	if err != nil {
		t.Fatal(err)
	}
	review := func(t *testing.T, token string, audiences ...string) authenticationv1.TokenReviewStatus {
		t.Helper()
		tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token review: %v", err)
		}
		return tr.Status
	}

	t.Run("bound token authenticates with pod info", func(t *testing.T) {
		st := review(t, token, Audience)
		if !st.Authenticated {
			t.Fatalf("not authenticated: error %q", st.Error)
		}
		if want := "system:serviceaccount:" + ns + ":" + sa; st.User.Username != want {
			t.Errorf("username = %q, want %q", st.User.Username, want)
		}
		if !slices.Contains(st.Audiences, Audience) {
			t.Errorf("audiences = %q, want to contain %q", st.Audiences, Audience)
		}
		wantExtra := map[string]string{
			"authentication.kubernetes.io/pod-name":  podName,
			"authentication.kubernetes.io/pod-uid":   string(pod.UID),
			"authentication.kubernetes.io/node-name": nodeName,
			"authentication.kubernetes.io/node-uid":  string(node.UID),
		}
		for k, want := range wantExtra {
			if got := st.User.Extra[k]; len(got) != 1 || got[0] != want {
				t.Errorf("user.extra[%q] = %q, want [%q]", k, got, want)
			}
		}
		t.Logf("user: %+v", st.User)
	})

	t.Run("token for another audience is rejected", func(t *testing.T) {
		other, err := c.ServiceAccountToken(ctx, ns, sa, []string{"other"}, pod)
		if err != nil {
			t.Fatal(err)
		}
		if st := review(t, other, Audience); st.Authenticated {
			t.Fatalf("token with audience \"other\" authenticated for %q as %+v", Audience, st.User)
		} else {
			t.Logf("rejected as expected: %q", st.Error)
		}
		// Sanity check: the same token is fine for its own audience.
		if st := review(t, other, "other"); !st.Authenticated {
			t.Fatalf("token with audience \"other\" not authenticated for \"other\": %q", st.Error)
		}
	})

	t.Run("unbound token has no pod info", func(t *testing.T) {
		unbound, err := c.ServiceAccountToken(ctx, ns, sa, []string{Audience}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := review(t, unbound, Audience)
		if !st.Authenticated {
			t.Fatalf("not authenticated: error %q", st.Error)
		}
		if got, ok := st.User.Extra["authentication.kubernetes.io/pod-name"]; ok {
			t.Errorf("unbound token has pod-name %q", got)
		}
	})
}

func TestKubeconfigAndRBAC(t *testing.T) {
	skipUnlessLinux(t)
	c := Require(t, cluster)
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	// RBAC is on and bootstrapped: the default cluster roles exist.
	if _, err := c.Clientset().RbacV1().ClusterRoles().Get(t.Context(), "cluster-admin", metav1.GetOptions{}); err != nil {
		t.Fatalf("get clusterrole cluster-admin: %v", err)
	}
}

// TestStartStop starts a second, private cluster and checks that Stop kills
// both processes and removes the state directory.
func TestStartStop(t *testing.T) {
	skipUnlessLinux(t)
	if testing.Short() {
		t.Skip("starts a second cluster; skipped with -short")
	}
	start := time.Now()
	log := newTailBuffer(1 << 20)
	c, err := Start(t.Context(), Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	etcdPID, apiPID := c.PIDs()
	t.Logf("Start took %v (etcd pid %d, kube-apiserver pid %d)", time.Since(start).Round(time.Millisecond), etcdPID, apiPID)
	if etcdPID == 0 || apiPID == 0 {
		t.Fatalf("PIDs() = %d, %d", etcdPID, apiPID)
	}
	if _, err := c.Clientset().Discovery().ServerVersion(); err != nil {
		t.Fatalf("server version: %v", err)
	}
	if !log.contains("\n[kube-apiserver] ") {
		t.Errorf("Options.Log got no prefixed kube-apiserver lines:\n%s", log.lastLines(20))
	}
	stop := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(stop).Round(time.Millisecond))
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, pid := range []int{etcdPID, apiPID} {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %d still exists after Stop (stat /proc: %v)", pid, err)
		}
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s still exists after Stop (%v)", c.Dir, err)
	}
}
