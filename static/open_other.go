//go:build !linux

package static

import "net/http"

// rootDir is only needed where openat2(2) exists.
type rootDir struct{}

// serveRegular has no short way here: the caller takes the general one.
func (h *Handler) serveRegular(http.ResponseWriter, *http.Request, string, string) bool { return false }
