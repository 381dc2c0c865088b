package vcs

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Isolating a run leaves every thread as it found it: a child that another goroutine started
// with Pdeathsig (as the test servers are) dies only with the thread that started it, and so
// must outlive any number of isolated runs.
func TestIsolationKeepsThreads(t *testing.T) {
	if err := CheckIsolation(); err != nil {
		t.Fatalf("the go command cannot be isolated here (it needs Linux network namespaces, CAP_SYS_ADMIN): %v", err)
	}
	var children []*exec.Cmd
	exited := make(chan error, 16)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			cmd := exec.Command("sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			children = append(children, cmd)
			mu.Unlock()
			go func() { exited <- cmd.Wait() }()
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range children {
			c.Process.Kill()
		}
	}()
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if err := CheckIsolation(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-exited:
		t.Fatalf("a child started with Pdeathsig died while runs were isolated: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}
