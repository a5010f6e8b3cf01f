package hashmap_test

import (
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/freelisttest"
	"github.com/quiverdb/quiver/freelist/hashmap"
)

func TestConformance(t *testing.T) {
	freelisttest.Run(t, func() freelist.Freelist { return hashmap.New() })
}

func BenchmarkFreelist(b *testing.B) {
	freelisttest.Benchmark(b, func() freelist.Freelist { return hashmap.New() })
}
