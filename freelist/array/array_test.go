package array_test

import (
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/array"
	"github.com/quiverdb/quiver/freelist/freelisttest"
)

func TestConformance(t *testing.T) {
	freelisttest.Run(t, func() freelist.Freelist { return array.New() })
}

func BenchmarkFreelist(b *testing.B) {
	freelisttest.Benchmark(b, func() freelist.Freelist { return array.New() })
}
