package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goferproxy/gofer/server"
)

// warmCmd sends a go.sum, a go.mod or a list of module@version to a gofer's admin API (`gofer
// warm FILE`), which starts a warm workflow; it shows the progress until the warm ends (unless
// --detach), prints the summary and the workflow's page in the Temporal UI, and fails when a
// version could not be fetched.
func warmCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var base, token string
	var detach bool
	fs := flag.NewFlagSet("gofer warm", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gofer warm [flags] FILE (a go.sum, a go.mod, or lines of module@version; - reads standard input)")
		fs.PrintDefaults()
	}
	e := &envFlags{fs: fs}
	e.string(&base, "url", "GOFER_URL", "http://127.0.0.1:3000", "base URL of the gofer to warm")
	e.string(&token, "token", "GOFER_ADMIN_TOKEN", "", "the gofer's admin token (set it by the variable, not the flag, to keep it out of ps)")
	e.bool(&detach, "detach", "GOFER_WARM_DETACH", false, "return once the warm has started, without waiting for it")
	if e.err != nil {
		return e.err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want one FILE")
	}
	var body []byte
	var err error
	if name := fs.Arg(0); name == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	a := adminClient{base: strings.TrimSuffix(base, "/"), token: token}
	var started server.WarmStarted
	if err := a.call(ctx, http.MethodPost, "/admin/warm", strings.NewReader(string(body)), &started); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "warm %s started: %d module versions\n", started.ID, started.Versions)
	if detach {
		printLink(stdout, started.URL)
		return nil
	}
	bar := progressBar{w: stderr, tty: isTerminal(stderr)}
	for {
		var st server.WarmStatus
		if err := a.call(ctx, http.MethodGet, "/admin/warm/"+url.PathEscape(started.ID), nil, &st); err != nil {
			return err
		}
		if st.Status != "Running" {
			bar.done()
			return printWarm(stdout, st)
		}
		bar.show(st)
		select {
		case <-ctx.Done():
			bar.done()
			return fmt.Errorf("stopped waiting; warm %s goes on", started.ID)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// printWarm prints the summary of an ended warm, its failures and its UI link.
func printWarm(w io.Writer, st server.WarmStatus) error {
	p := st.Progress
	fmt.Fprintf(w, "warm %s %s: %s\n", st.ID, strings.ToLower(st.Status), p)
	for _, f := range p.Failures {
		fmt.Fprintf(w, "  %s@%s: %s\n", f.Module, f.Version, f.Reason)
	}
	if n := p.Failed - len(p.Failures); n > 0 {
		fmt.Fprintf(w, "  (%d more failures not listed)\n", n)
	}
	printLink(w, st.URL)
	switch {
	case st.Error != "":
		return fmt.Errorf("warm %s: %s", st.ID, st.Error)
	case st.Status != "Completed":
		return fmt.Errorf("warm %s ended %s", st.ID, st.Status)
	case p.Failed > 0:
		return fmt.Errorf("%d of %d versions could not be fetched", p.Failed, p.Total)
	}
	return nil
}

func printLink(w io.Writer, link string) {
	if link != "" {
		fmt.Fprintln(w, "in the Temporal UI:", link)
	}
}

// adminClient calls a gofer's admin API.
type adminClient struct {
	base, token string
}

// call sends a request and decodes the JSON answer into out; a non-2xx answer is an error with
// the server's one-line reason.
func (a adminClient) call(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// progressBar draws a warm's progress on one terminal line, redrawn in place; elsewhere (a log
// file) it writes a line whenever the count of versions done changes.
type progressBar struct {
	w    io.Writer
	tty  bool
	last int
}

func (b *progressBar) show(st server.WarmStatus) {
	p := st.Progress
	if p.Total == 0 {
		return
	}
	if !b.tty {
		if p.Done != b.last {
			fmt.Fprintln(b.w, p)
			b.last = p.Done
		}
		return
	}
	const width = 30
	n := width * p.Done / p.Total
	fmt.Fprintf(b.w, "\r[%s%s] %s", strings.Repeat("#", n), strings.Repeat(".", width-n), p)
}

func (b *progressBar) done() {
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
