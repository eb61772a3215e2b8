package lb

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPick measures one Pick and its Done with the real clock and
// random source.
func BenchmarkPick(b *testing.B) {
	for _, kind := range kinds {
		for _, n := range []int{3, 10, 100} {
			p := kind.new(addrs(0, n), Config{})
			b.Run(fmt.Sprintf("%s/n=%d", kind.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					i, _ := p.Pick(nil)
					p.Done(i, time.Millisecond)
				}
			})
			b.Run(fmt.Sprintf("%s/n=%d/parallel", kind.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i, _ := p.Pick(nil)
						p.Done(i, time.Millisecond)
					}
				})
			})
		}
	}
}
