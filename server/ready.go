package server

import (
	"context"

	"github.com/gin-gonic/gin"
)

// ReadyCheck is one dependency GET /readyz checks: Check returns nil while Name is usable.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// ready answers GET /readyz. (To be written.)
func (s *Server) ready(c *gin.Context) { health(c) }
