package server

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"go.uber.org/zap"
)

// passthrough answers a canonical .info, .mod or .zip straight from the upstream, streaming the
// zip, and stores nothing.
func (s *Server) passthrough(ctx context.Context, w http.ResponseWriter, r *http.Request, req request) error {
	var body io.Reader
	switch req.kind {
	case "info", "mod":
		get := s.cfg.Upstream.Mod
		if req.kind == "info" {
			get = s.cfg.Upstream.Info
		}
		b, _, err := get(ctx, req.path, req.version)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	case "zip":
		zip, _, err := s.cfg.Upstream.Zip(ctx, req.path, req.version)
		if err != nil {
			return err
		}
		defer zip.Close()
		body = zip
	}
	h := w.Header()
	h["Content-Type"] = contentTypes[req.kind]
	h["Cache-Control"] = s.cacheControl[shortLived]
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// Past the status line, a failure can only cut the response short: the go command's
	// hash check rejects a truncated zip.
	if _, err := io.Copy(w, body); err != nil {
		s.cfg.Log.Info("passthrough cut short", zap.String("module", req.path), zap.String("version", req.version), zap.Error(err))
	}
	return nil
}
