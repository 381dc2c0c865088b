package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goferproxy/gofer/internal/testserver"
)

// proc is a server process this program started. It runs in its own process group (so that a
// Ctrl-C reaches this program, which then stops it) and dies with this program (Pdeathsig), so
// that nothing outlives a run, even a killed one.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // the file holding its stdout and stderr
	done chan struct{}
}

// startProc runs bin with args; env nil means this program's environment.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop kills the process and everything it started (nginx's workers, say).
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// waitHTTP waits, at most a minute, until url answers 200.
func (p *proc) waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s exited at start:\n%s", p.name, tail(p.log))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s: %v\n%s", p.name, url, err, tail(p.log))
		}
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// memory reads the resident set size, its parts and its peak from /proc/<pid>/status.
func (p *proc) memory() (memRow, error) {
	m := memRow{name: p.name}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS:": &m.rss, "VmHWM:": &m.peak, "RssAnon:": &m.anon, "RssFile:": &m.file}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" || fields[f[0]] == nil {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		*fields[f[0]] = n << 10
	}
	if m.rss == 0 {
		return m, fmt.Errorf("%s: no VmRSS in /proc/%d/status", p.name, p.cmd.Process.Pid)
	}
	return m, nil
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	port, err := testserver.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// nginxBinary finds nginx, which Debian installs in /usr/sbin, outside some users' PATH.
func nginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

// startNginx serves root with nginx as a static file server tuned the usual way (sendfile,
// two workers for the two cores); probe is a path under root that must answer 200.
func startNginx(ctx context.Context, dir, root, probe string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	// user root: the workers must read root, a 0700 temporary directory of this (root) user.
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
	sendfile on;
	tcp_nopush on;
	access_log off;
	keepalive_requests 100000;
	client_body_temp_path %[1]s/client-body;
	server {
		listen %[2]s;
		root %[3]s;
		types { application/zip zip; application/json info; text/plain mod; }
	}
}
`, dir, addr, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc("nginx", filepath.Join(dir, "nginx.log"), nil, nginxBinary(),
		"-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", confPath)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.waitHTTP(ctx, base+"/"+probe); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%w\n%s", err, tail(filepath.Join(dir, "nginx-error.log")))
	}
	return p, base, nil
}

// startSelf runs this program again as the server kind (fileserver, or one of bareKinds) over
// root, in a process of its own so that its CPU time and memory are its own, and waits until
// probe answers.
func startSelf(ctx context.Context, kind, dir, root, probe string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc(kind, filepath.Join(dir, kind+".log"), nil, self, "-serve", kind, "-root", root, "-listen", addr)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.waitHTTP(ctx, base+"/"+probe); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, base, nil
}

// serveSelf is the -serve mode: the server kind over root, until killed.
func serveSelf(kind, root, addr string) error {
	if kind == "fileserver" {
		return http.ListenAndServe(addr, http.FileServer(http.Dir(root)))
	}
	return serveBare(kind, root, addr)
}

// startGofer runs `bin/gofer serve` with its data in dir/name, as the last-wins settings env
// over this program's environment, and waits for /healthz.
func startGofer(ctx context.Context, dir, name string, env []string) (*proc, string, error) {
	bin, err := testserver.Binary("gofer")
	if err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	data := filepath.Join(dir, name)
	if err := os.Mkdir(data, 0o755); err != nil {
		return nil, "", err
	}
	env = append(append(os.Environ(), "GOFER_LISTEN="+addr, "GOFER_DATA_DIR="+data, "GOFER_LOG_LEVEL=warn"), env...)
	p, err := startProc(name, filepath.Join(dir, name+".log"), env, bin, "serve")
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.waitHTTP(ctx, base+"/healthz"); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, base, nil
}

// cpuSample is a reading of CPU clock ticks: the machine's in all, the machine's busy ones, and
// those of this program's process tree (itself, every live descendant, and the children each
// has reaped, wrk's runs among them).
type cpuSample struct{ total, busy, ours int64 }

func sampleCPU() (cpuSample, error) {
	var s cpuSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i := 1; i < len(f) && i <= 8; i++ {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		s.total += n
		if i != 4 && i != 5 { // idle, iowait
			s.busy += n
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return s, err
	}
	parent, ticks := map[int]int{}, map[int]int64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := testserver.ReadProcCPU(pid)
		if err != nil {
			continue // gone since ReadDir
		}
		parent[pid], ticks[pid] = c.PPid, int64((c.Own+c.Children)/testserver.Tick)
	}
	for pid := range ticks {
		for p := pid; p > 1; p = parent[p] {
			if p == os.Getpid() {
				s.ours += ticks[pid]
				break
			}
		}
	}
	return s, nil
}

// othersShare is the share of the machine's CPU that processes outside this program's tree used
// between a and b.
func othersShare(a, b cpuSample) float64 {
	if b.total == a.total {
		return 0
	}
	return float64((b.busy-a.busy)-(b.ours-a.ours)) / float64(b.total-a.total)
}
