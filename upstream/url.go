package upstream

import (
	"github.com/goferproxy/gofer"
)

// URL is where the first entry, if it is a proxy, serves one file of path@version (ext: info,
// mod or zip), for clients redirected there; credentials in the entry are left out.
func (c *Chain) URL(path, version, ext string) (string, error) {
	if len(c.entries) == 0 || c.entries[0].kind != proxyEntry {
		return "", gofer.Errorf(gofer.ErrNotFound, "no upstream proxy to redirect %s@%s to", path, version)
	}
	escPath, err := escapePath(path)
	if err != nil {
		return "", err
	}
	file, err := versionFile(path, version, "."+ext)
	if err != nil {
		return "", err
	}
	return withoutUser(*c.entries[0].url) + "/" + escPath + "/" + file, nil
}
