package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// memRow is the memory of one server process after every run.
type memRow struct {
	name       string
	rss, peak  int64 // VmRSS and VmHWM, bytes
	anon, file int64 // RssAnon (heap, stacks) and RssFile (mapped files: the binary's pages), bytes
}

type reportInput struct {
	command string
	cpu     [2]cpuSample // before the first run and after the last
	runTime time.Duration
	files   []benchFile
	servers []string                  // in the order of the table: nginx, fileserver, the gofers
	results map[[2]string][]wrkResult // by file label and server name
	mem     []memRow
}

// stat is the median of every run of one (file, server) pair.
type stat struct {
	req, mibps, p50, p99 float64
	sockErrors           int
}

func (in reportInput) stat(file, server string) stat {
	rs := in.results[[2]string{file, server}]
	field := func(f func(wrkResult) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return median(v)
	}
	s := stat{
		req:   field(func(r wrkResult) float64 { return r.reqPerSec }),
		mibps: field(func(r wrkResult) float64 { return r.bytesPerSec / (1 << 20) }),
		p50:   field(func(r wrkResult) float64 { return r.p50 }),
		p99:   field(func(r wrkResult) float64 { return r.p99 }),
	}
	for _, r := range rs {
		s.sockErrors += r.sockErrors
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func writeReport(w io.Writer, in reportInput) {
	fmt.Fprintf(w, "# gofer hit path: nginx, FileServer and gofer on this machine\n\n")
	fmt.Fprintf(w, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "- machine: %d cores (%s), %s RAM, Linux %s\n", runtime.NumCPU(), cpuModel(), memTotal(), output("uname", "-r"))
	fmt.Fprintf(w, "- software: %s, %s, %s\n", runtime.Version(), output(nginxBinary(), "-v"), output("wrk", "-v"))
	fmt.Fprintf(w, "- command: `%s`\n", in.command)
	a, b := in.cpu[0], in.cpu[1]
	fmt.Fprintf(w, "- CPU during the runs: %.0f%% busy; processes this program did not start used %.1f%% (more than a few percent skews the ratios: run again on a quiet machine)\n",
		100*float64(b.busy-a.busy)/float64(max(1, b.total-a.total)), 100*othersShare(a, b))
	fmt.Fprintf(w, "- each run: `wrk -t2 -c32 -d%ds --latency <url>`; every pair ran %d times, the servers in the order A B C D, D C B A, A B C D, D C B A; the table shows the medians. wrk shares the cores with the server under test.\n",
		max(1, int(in.runTime.Seconds())), len(in.results[[2]string{in.files[0].label, in.servers[0]}]))
	fmt.Fprintf(w, "- files (bytes):")
	for _, f := range in.files {
		fmt.Fprintf(w, " %s %d;", f.label, f.size)
	}
	fmt.Fprintf(w, " zips of random data, so they weigh what they hold\n")
	fmt.Fprintf(w, "- servers: nginx (nginx-light, 2 workers, sendfile), `net/http.FileServer` in its own process, the bare servers (every file in memory, written with a gofer hit's headers and nothing else done: `nethttp` a net/http handler, `gin` the same behind one gin route), gofer on disk + embedded metadata with its request log off (`gofer-disk`) and on (`gofer-disk-log`: JSON at info, to a file, the production default), gofer on S3 (versitygw) + MongoDB (FerretDB); the same bytes in each (checked before the runs)\n\n")

	fmt.Fprintf(w, "| file | server | req/s | MiB/s | p50 ms | p99 ms | × nginx (req/s) | × gin (req/s) |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|\n")
	var errs []string
	for _, f := range in.files {
		nginx, gin := in.stat(f.label, "nginx"), in.stat(f.label, "gin")
		for _, name := range in.servers {
			s := in.stat(f.label, name)
			fmt.Fprintf(w, "| %s | %s | %.0f | %.1f | %.2f | %.2f | %.2f | %.2f |\n",
				f.label, name, s.req, s.mibps, s.p50, s.p99, s.req/nginx.req, s.req/gin.req)
			if s.sockErrors > 0 {
				errs = append(errs, fmt.Sprintf("%s %s: %d", f.label, name, s.sockErrors))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nwrk socket errors (connect, read, write, timeout; all runs): %s\n", strings.Join(errs, "; "))
	}

	fmt.Fprintf(w, "\nMemory after every run (from /proc/<pid>/status):\n\n| process | VmRSS MiB | of it anonymous (RssAnon) | of it files (RssFile) | peak (VmHWM) MiB |\n|---|--:|--:|--:|--:|\n")
	for _, m := range in.mem {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.1f |\n", m.name, mib(m.rss), mib(m.anon), mib(m.file), mib(m.peak))
	}

	fmt.Fprintf(w, "\nTargets (issue \"Cache hits at the ceiling of gin itself\"), judged on this run:\n\n| target | server | measured | needed | |\n|---|---|--:|--:|---|\n")
	row := func(target, server, got, need string, ok bool) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", target, server, got, need, map[bool]string{true: "met", false: "**not met**"}[ok])
	}
	atLeast := func(target, server, file string, ratio float64, baseline string) {
		got, base := in.stat(file, server).req, in.stat(file, baseline).req
		row(target, server, fmt.Sprintf("%.0f req/s (%.2f ×)", got, got/base),
			fmt.Sprintf("≥ %.0f req/s (%.2f × %.0f)", ratio*base, ratio, base), got >= ratio*base)
	}
	for _, t := range []struct {
		server string
		ratio  float64
	}{{"gofer-disk", 0.9}, {"gofer-disk-log", 0.8}} {
		atLeast(fmt.Sprintf(".info ≥ %.1f × gin", t.ratio), t.server, "small.info", t.ratio, "gin")
		atLeast(fmt.Sprintf(".mod ≥ %.1f × gin", t.ratio), t.server, "small.mod", t.ratio, "gin")
	}
	atLeast("30 KB zip (held in memory) ≥ 0.85 × gin", "gofer-disk", "small.zip", 0.85, "gin")
	for _, g := range []string{"gofer-disk", "gofer-s3"} {
		got, base := in.stat("large.zip", g), in.stat("large.zip", "nginx")
		row("9 MB zip throughput ≥ 0.95 × nginx", g, fmt.Sprintf("%.1f MiB/s (%.2f ×)", got.mibps, got.mibps/base.mibps),
			fmt.Sprintf("≥ %.1f MiB/s", 0.95*base.mibps), got.mibps >= 0.95*base.mibps)
		row("9 MB zip p99 ≤ 1.2 × nginx", g, fmt.Sprintf("%.2f ms (%.2f ×)", got.p99, got.p99/base.p99),
			fmt.Sprintf("≤ %.2f ms", 1.2*base.p99), got.p99 <= 1.2*base.p99)
	}
	atLeast("S3 .info within 10% of disk", "gofer-s3", "small.info", 0.9, "gofer-disk")
	atLeast("S3 .mod within 10% of disk", "gofer-s3", "small.mod", 0.9, "gofer-disk")
	atLeast("S3 3 MB zip ≥ 0.7 × disk", "gofer-s3", "medium.zip", 0.7, "gofer-disk")
	atLeast("S3 9 MB zip ≥ 0.7 × disk", "gofer-s3", "large.zip", 0.7, "gofer-disk")
	for _, m := range in.mem {
		if most := map[string]int64{"gofer-disk": 24 << 20, "gofer-s3": 32 << 20}[m.name]; most > 0 {
			row(fmt.Sprintf("RssAnon ≤ %d MiB", most>>20), m.name, fmt.Sprintf("%.1f MiB", mib(m.anon)), fmt.Sprintf("≤ %d MiB", most>>20), m.anon <= most)
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// memTotal is MemTotal of /proc/meminfo, in GiB.
func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.Lines(string(b)) {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

// output is the first line a command prints, on stdout or stderr (nginx -v prints on stderr,
// wrk -v exits with status 1).
func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	if line == "" {
		return name + " (unknown version)"
	}
	return line
}
