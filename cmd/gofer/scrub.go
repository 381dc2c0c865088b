package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/goferproxy/gofer/workflows"
)

// scrubCmd runs a scrub now (`gofer scrub`): it starts the Scrub workflow, which the workers
// run (so the stores are theirs, not this command's), waits for it and prints its report. It
// fails when the scrub found a mismatch, so that a script or a cron job notices.
func scrubCmd(ctx context.Context, args []string, stdout io.Writer) error {
	var tmp temporalSettings
	fs := flag.NewFlagSet("gofer scrub", flag.ContinueOnError)
	e := &envFlags{fs: fs}
	tmp.flags(e, "")
	if e.err != nil {
		return e.err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c, err := tmp.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	id := "scrub:" + time.Now().UTC().Format(time.RFC3339Nano)
	run, err := c.ExecuteWorkflow(ctx, workflows.ScrubOptions(id), workflows.Scrub, workflows.ScrubRequest{})
	if err != nil {
		return fmt.Errorf("starting the scrub: %w", err)
	}
	ui := "/namespaces/" + url.PathEscape(tmp.namespace) + "/workflows/" + url.PathEscape(id) + "/" + run.GetRunID() + "/history"
	fmt.Fprintf(stdout, "scrub %s started; in the Temporal UI: %s\n", id, ui)
	var rep workflows.ScrubReport
	if err := run.Get(ctx, &rep); err != nil {
		return fmt.Errorf("scrub %s: %w", id, err)
	}
	printScrubReport(stdout, rep)
	if rep.MismatchCount > 0 {
		return fmt.Errorf("scrub %s found %d mismatches", id, rep.MismatchCount)
	}
	return nil
}

// printScrubReport prints the counts, then one line per listed mismatch.
func printScrubReport(w io.Writer, rep workflows.ScrubReport) {
	fmt.Fprintf(w, "%d versions checked: %d files, %d bytes; %d unrecorded; %d mismatches\n",
		rep.Versions, rep.Files, rep.Bytes, rep.Unrecorded, rep.MismatchCount)
	for _, m := range rep.Mismatches {
		fmt.Fprintln(w, m)
	}
	if n := rep.MismatchCount - len(rep.Mismatches); n > 0 {
		fmt.Fprintf(w, "(%d more mismatches not listed; see the checksum alarms in the worker logs)\n", n)
	}
}
