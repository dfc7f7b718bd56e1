package static

import (
	"os"
	"path/filepath"
)

// exampleSite makes a small site for ExampleHandler in a new temporary
// directory, which the caller removes.
func exampleSite() (string, error) {
	dir, err := os.MkdirTemp("", "cgibox-static-example")
	if err != nil {
		return "", err
	}
	for name, body := range map[string]string{
		"index.html":       "<h1>hi</h1>\n",
		"cgi-bin/hello.sh": "#!/bin/sh\necho hi\n",
		".env":             "SECRET=1\n",
		"docs/readme.txt":  "docs\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return dir, err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}
