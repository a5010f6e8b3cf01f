package main

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestRunsOf(t *testing.T) {
	got := runsOf([]int64{3, 4, 5, 9, 11, 12})
	want := [][2]int64{{3, 3}, {9, 1}, {11, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runsOf = %v, want %v", got, want)
	}
	if runsOf(nil) != nil {
		t.Error("runsOf(nil) is not nil")
	}
}

func TestPick(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ids := pick(r, 100, 40, 30)
	if len(ids) != 30 || !slices.IsSorted(ids) || ids[0] < 100 || ids[len(ids)-1] >= 140 {
		t.Fatalf("pick = %v", ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("pick repeats %d", ids[i])
		}
	}
}
