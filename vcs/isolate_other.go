//go:build !linux

package vcs

import "github.com/goferproxy/gofer/egress"

// isolated needs Linux's network namespaces; elsewhere it starts nothing.
func isolated(*egress.Policy, func(string) error) (*egress.Proxy, error) {
	return nil, errNoNamespace
}
