package main

import (
	"testing"
	"time"
)

// CPU this process burns counts as ours, not as another process's.
func TestSampleCPUCountsOurs(t *testing.T) {
	a, err := sampleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := sampleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// 300 ms of one core is 30 ticks at the usual 100 per second.
	if ours := b.ours - a.ours; ours < 15 {
		t.Errorf("our ticks grew by %d while spinning 300 ms, want about 30", ours)
	}
	if b.busy-a.busy < b.ours-a.ours-2 {
		t.Errorf("the machine was busy %d ticks, fewer than ours (%d)", b.busy-a.busy, b.ours-a.ours)
	}
}
