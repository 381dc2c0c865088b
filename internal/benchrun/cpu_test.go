package main

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user and system CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPU this process burns counts as ours, not as another process's.
func TestSampleCPUCountsOurs(t *testing.T) {
	a, err := sampleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// 300 ms of this process's own CPU time, not of the clock: on a busy machine the clock runs
	// ahead of what the scheduler gives us.
	for start := cpuTime(t); cpuTime(t)-start < 300*time.Millisecond; {
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
