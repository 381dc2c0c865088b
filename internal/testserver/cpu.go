package testserver

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Tick is the unit of the CPU times in /proc/stat and /proc/<pid>/stat: 1/USER_HZ, which is 100
// on every Linux build gofer runs on.
const Tick = time.Second / 100

// ProcCPU is what /proc/<pid>/stat says of a process's CPU time: its own (user and system,
// all its threads) and that of the children it has waited for, and its parent's pid.
type ProcCPU struct {
	PPid          int
	Own, Children time.Duration
}

// ReadProcCPU reads the CPU times of process pid.
func ReadProcCPU(pid int) (ProcCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcCPU{}, err
	}
	// pid (comm) state ppid ... utime stime cutime cstime: fields 4 and 14 to 17; comm may hold
	// spaces, so count from its closing parenthesis.
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(rest) < 15 {
		return ProcCPU{}, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(rest))
	}
	var ticks [4]int64
	for i, v := range rest[11:15] {
		if ticks[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return ProcCPU{}, fmt.Errorf("/proc/%d/stat: %v", pid, err)
		}
	}
	ppid, _ := strconv.Atoi(rest[1])
	return ProcCPU{PPid: ppid, Own: time.Duration(ticks[0]+ticks[1]) * Tick, Children: time.Duration(ticks[2]+ticks[3]) * Tick}, nil
}

// CPU is the CPU time the server has used since it started (0 if it is not running).
func (p *Process) CPU() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	c, _ := ReadProcCPU(p.cmd.Process.Pid)
	return c.Own + c.Children
}
