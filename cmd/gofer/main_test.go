package main

import (
	"testing"

	"github.com/goferproxy/gofer/egress"
)

// The "direct" entry fetches whatever path a client names: it gets none of the operator's
// credentials, ssh or allowed hosts, which only the fetcher of private modules has.
func TestFetchersKeepTheOperatorsAccessForPrivateModules(t *testing.T) {
	allow, err := egress.Parse("git.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	s := &settings{netrc: "/keys/netrc", gitConfig: "/keys/gitconfig", gitSSHCommand: "ssh -i /keys/id"}
	direct, private := fetchers(s, allow)
	if direct.NetrcFile != "" || direct.GitConfig != "" || direct.GitSSHCommand != "" || direct.Egress != nil {
		t.Errorf("the direct entry's fetcher has the operator's access: %+v", direct)
	}
	if private.NetrcFile != s.netrc || private.GitConfig != s.gitConfig || private.GitSSHCommand != s.gitSSHCommand || private.Egress != allow {
		t.Errorf("the private modules' fetcher lacks the operator's access: %+v", private)
	}
}
