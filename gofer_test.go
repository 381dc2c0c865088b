package gofer_test

import (
	"testing"

	"github.com/goferproxy/gofer"
)

func TestLatest(t *testing.T) {
	for i, c := range []struct {
		in   []string
		want string
	}{
		0: {[]string{"v1.0.0", "v1.10.0", "v1.2.0"}, "v1.10.0"},
		1: {[]string{"v1.0.0", "v2.0.0-beta.1"}, "v1.0.0"},
		2: {[]string{"v0.0.0-20240101000000-abcdefabcdef", "v0.1.0-rc.1"}, "v0.1.0-rc.1"},
		3: {[]string{"v1.0.1-0.20240101000000-abcdefabcdef", "v1.0.0-rc.1"}, "v1.0.0-rc.1"}, // a tag beats a higher pseudo-version
		4: {[]string{"v0.0.0-20240101000000-abcdefabcdef", "v0.0.0-20250101000000-abcdefabcdef"}, "v0.0.0-20250101000000-abcdefabcdef"},
	} {
		if got := gofer.Latest(c.in); got != c.want {
			t.Errorf("%d: Latest(%v) = %s, want %s", i, c.in, got, c.want)
		}
	}
}
