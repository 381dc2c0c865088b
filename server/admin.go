package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server/httperr"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows"
)

// Admin configures the admin API under /admin: warming, fetches and schedules.
type Admin struct {
	// Token is the bearer token every admin request must carry; empty turns the API off.
	Token string
	// Temporal starts, reads and lists workflows and schedules.
	Temporal AdminTemporal
	// Namespace is the Temporal namespace, for visibility queries and UI links.
	Namespace string
	// UI is the Temporal Web UI's base URL, for links to workflows; empty gives no links.
	UI string
	// WarmConcurrency is how many versions a warm fetches at once; zero means 8.
	WarmConcurrency int
}

// AdminTemporal is the part of a Temporal client the admin API uses.
type AdminTemporal interface {
	Starter
	DescribeWorkflow(ctx context.Context, workflowID, runID string) (*client.WorkflowExecutionDescription, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	ScheduleClient() client.ScheduleClient
}

// maxWarmBody bounds the body of POST /admin/warm: a go.sum of every version warm.MaxList allows.
const maxWarmBody = 16 << 20

// adminRoutes registers the admin API on r behind the admin token; with no token, every admin
// path answers 404 and says why. (No module path starts with "admin/": it has no dot.)
func (s *Server) adminRoutes(r *gin.Engine) {
	if s.cfg.Admin.Token == "" {
		r.Any("/admin/*rest", func(c *gin.Context) {
			httperr.Write(c.Writer, gofer.Errorf(gofer.ErrNotFound, "the admin API is off: no admin token is set (GOFER_ADMIN_TOKEN)"))
		})
		return
	}
	g := r.Group("/admin", requireToken(s.cfg.Admin.Token))
	g.POST("/warm", s.startWarm)
	g.GET("/warm/:id", s.warmStatus)
	g.GET("/fetches", s.fetchList)
	g.GET("/schedules", s.scheduleList)
}

// WarmStarted answers POST /admin/warm.
type WarmStarted struct {
	ID       string `json:"id"`
	RunID    string `json:"runId"`
	Versions int    `json:"versions"`
	URL      string `json:"url,omitempty"` // the workflow in the Temporal UI
}

// startWarm starts (or joins) the warm of the versions the body names: a go.sum, a go.mod, or
// lines of module@version.
func (s *Server) startWarm(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxWarmBody+1))
	if err != nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrBadRequest, "reading the body: %w", err))
		return
	}
	if len(body) > maxWarmBody {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrTooLarge, "body over %d bytes", maxWarmBody))
		return
	}
	list, err := warm.ParseList(body)
	if err != nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrBadRequest, "%w", err))
		return
	}
	ctx := c.Request.Context()
	key, err := warm.PutList(ctx, s.cfg.Blobs, list)
	if err != nil {
		httperr.Write(c.Writer, err)
		return
	}
	a := s.cfg.Admin
	o := workflows.WarmOptions(key, len(list))
	run, err := a.Temporal.ExecuteWorkflow(ctx, o, workflows.Warm, workflows.WarmRequest{List: key, Concurrency: a.WarmConcurrency})
	if err != nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrUnavailable, "starting the warm: %w", err))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusAccepted, WarmStarted{ID: o.ID, RunID: run.GetRunID(), Versions: len(list), URL: s.uiLink(o.ID, run.GetRunID())})
}

// uiLink is the Temporal UI's page of a workflow run, or "" without a UI.
func (s *Server) uiLink(id, runID string) string {
	a := s.cfg.Admin
	if a.UI == "" {
		return ""
	}
	return strings.TrimSuffix(a.UI, "/") + "/namespaces/" + url.PathEscape(a.Namespace) + "/workflows/" + url.PathEscape(id) + "/" + url.PathEscape(runID)
}

// WarmStatus answers GET /admin/warm/:id.
type WarmStatus struct {
	ID       string                 `json:"id"`
	Status   string                 `json:"status"` // a Temporal execution status: Running, Completed, Failed...
	Progress workflows.WarmProgress `json:"progress"`
	Error    string                 `json:"error,omitempty"`
	URL      string                 `json:"url,omitempty"`
}

// warmStatus reports a warm's progress, or its result once it has ended.
func (s *Server) warmStatus(c *gin.Context) {
	ctx, id := c.Request.Context(), c.Param("id")
	if !strings.HasPrefix(id, "warm:") {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrBadRequest, "%q is not a warm's ID", id))
		return
	}
	t := s.cfg.Admin.Temporal
	d, err := t.DescribeWorkflow(ctx, id, "")
	if err != nil {
		httperr.Write(c.Writer, temporalErr("describing "+id, err))
		return
	}
	st := WarmStatus{ID: id, Status: d.Status.String(), URL: s.uiLink(id, d.WorkflowExecution.RunID)}
	if d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		v, err := t.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
		if err == nil {
			err = v.Get(&st.Progress)
		}
		if err != nil {
			httperr.Write(c.Writer, temporalErr("querying "+id, err))
			return
		}
	} else if err := t.GetWorkflow(ctx, id, d.WorkflowExecution.RunID).Get(ctx, &st.Progress); err != nil {
		st.Error = err.Error()
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, st)
}

// temporalErr classifies a failed call to Temporal.
func temporalErr(what string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return gofer.Errorf(gofer.ErrNotFound, "%s: no such workflow", what)
	}
	return gofer.Errorf(gofer.ErrUnavailable, "%s: %w", what, err)
}

// Fetches answers GET /admin/fetches.
type Fetches struct {
	Module  string   `json:"module"`
	Stored  []string `json:"stored"`  // semver order
	Fetches []Fetch  `json:"fetches"` // newest first, at most maxFetches
}

// Fetch is one fetch workflow run as Temporal visibility sees it.
type Fetch struct {
	Version    string     `json:"version"`
	WorkflowID string     `json:"workflowId"`
	RunID      string     `json:"runId"`
	Status     string     `json:"status"`
	Outcome    string     `json:"outcome,omitempty"`
	Source     string     `json:"source,omitempty"`
	Start      time.Time  `json:"start"`
	Close      *time.Time `json:"close,omitempty"`
	URL        string     `json:"url,omitempty"`
}

const maxFetches = 100

// fetchList lists the stored versions of ?module= and its recent fetches.
func (s *Server) fetchList(c *gin.Context) {
	ctx, path := c.Request.Context(), c.Query("module")
	if err := module.CheckPath(path); err != nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrBadRequest, "module=%q: %w", path, err))
		return
	}
	stored, err := s.cfg.Meta.Versions(ctx, path)
	if err != nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrUnavailable, "stored versions of %s: %w", path, err))
		return
	}
	semver.Sort(stored)
	if stored == nil {
		stored = []string{} // JSON [], not null
	}
	a := s.cfg.Admin
	// A module path holds no quote or backslash (module.CheckPath), so it quotes as is.
	resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: a.Namespace, PageSize: maxFetches,
		Query: fmt.Sprintf(`WorkflowType = "Fetch" AND %s = "%s"`, workflows.GoModule.GetName(), path),
	})
	if err != nil {
		httperr.Write(c.Writer, temporalErr("listing the fetches of "+path, err))
		return
	}
	out := Fetches{Module: path, Stored: stored, Fetches: []Fetch{}}
	for _, e := range resp.GetExecutions() {
		f := Fetch{
			WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
			Status: e.GetStatus().String(), Start: e.GetStartTime().AsTime(),
			Version: keyword(e.GetSearchAttributes(), workflows.GoVersion.GetName()),
			Outcome: keyword(e.GetSearchAttributes(), workflows.FetchOutcome.GetName()),
			Source:  keyword(e.GetSearchAttributes(), workflows.FetchSource.GetName()),
		}
		if e.GetCloseTime() != nil {
			t := e.GetCloseTime().AsTime()
			f.Close = &t
		}
		f.URL = s.uiLink(f.WorkflowID, f.RunID)
		out.Fetches = append(out.Fetches, f)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

// keyword reads the Keyword search attribute name, or "".
func keyword(sa *commonpb.SearchAttributes, name string) string {
	p, ok := sa.GetIndexedFields()[name]
	if !ok {
		return ""
	}
	var v string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
		return ""
	}
	return v
}

// Schedule is one Temporal Schedule as GET /admin/schedules lists it.
type Schedule struct {
	ID       string      `json:"id"`
	Workflow string      `json:"workflow"`
	Every    []string    `json:"every,omitempty"`
	Paused   bool        `json:"paused"`
	Note     string      `json:"note,omitempty"`
	Next     []time.Time `json:"next"`
	Recent   []Run       `json:"recent"`
}

// Run is a workflow a schedule started.
type Run struct {
	WorkflowID string    `json:"workflowId"`
	RunID      string    `json:"runId"`
	Time       time.Time `json:"time"`
	URL        string    `json:"url,omitempty"`
}

// scheduleList lists the namespace's schedules (gofer's own: scrub and watchlist).
func (s *Server) scheduleList(c *gin.Context) {
	ctx := c.Request.Context()
	it, err := s.cfg.Admin.Temporal.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		httperr.Write(c.Writer, temporalErr("listing the schedules", err))
		return
	}
	out := []Schedule{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			httperr.Write(c.Writer, temporalErr("listing the schedules", err))
			return
		}
		sc := Schedule{ID: e.ID, Workflow: e.WorkflowType.Name, Paused: e.Paused, Note: e.Note, Next: e.NextActionTimes, Recent: []Run{}}
		if e.Spec != nil {
			for _, iv := range e.Spec.Intervals {
				sc.Every = append(sc.Every, iv.Every.String())
			}
		}
		for _, r := range e.RecentActions {
			if w := r.StartWorkflowResult; w != nil {
				sc.Recent = append(sc.Recent, Run{WorkflowID: w.WorkflowID, RunID: w.FirstExecutionRunID, Time: r.ActualTime, URL: s.uiLink(w.WorkflowID, w.FirstExecutionRunID)})
			}
		}
		out = append(out, sc)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}
