package static

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var screenshots = flag.String("screenshots", "", "keep TestPagesRender's screenshots (PNG) in this directory")

// TestPagesRender renders the pages people see — the error pages, a
// directory listing and the demo's index — in headless Chromium at a
// desktop and a phone size, and checks that each one shows its text, is
// laid out for the viewport (the phone's layout viewport is the phone's
// width, which needs the viewport meta) and never scrolls sideways (a
// 110-character file name must wrap), that its stylesheet applied, and
// that the screenshot has the right size and is not blank. Run with
// -screenshots DIR to look at the pictures.
func TestPagesRender(t *testing.T) {
	site := t.TempDir()
	if err := os.CopyFS(site, os.DirFS("../examples")); err != nil {
		t.Fatal(err)
	}
	longName := strings.Repeat("long_name_", 11) + ".txt" // no break opportunity in it
	must(t, os.WriteFile(filepath.Join(site, "docs", longName), []byte("x\n"), 0o644))
	root, err := os.OpenRoot(site)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	srv := httptest.NewServer(&Handler{Root: root, CGIDirs: []string{"/cgi-bin"}})
	t.Cleanup(srv.Close)

	pages := []struct {
		name   string
		path   string
		status int
		text   []string
	}{
		{"404", "/no/such/page.html", 404, []string{"Error response", "Error code: 404", "Message: File not found.", "Error code explanation: 404 - "}},
		{"403", "/cgi-bin/hello.sh", 403, []string{"Error response", "Error code: 403", "Message: Forbidden."}},
		{"listing", "/docs/", 200, []string{"Directory listing for /docs/", "README.txt", "notes.md", longName}},
		{"index", "/", 200, []string{"cgibox demo site", "Classic Perl and Python CGI", "Browse a directory listing"}},
	}
	sizes := []struct {
		name          string
		width, height int
		mobile        bool
	}{
		{"desktop", 1280, 800, false},
		{"phone", 390, 844, true},
	}

	// One Chromium for every page, bounded as a whole; its cleanup (quit,
	// or kill its process group) runs before cancel.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 60*time.Second)
	t.Cleanup(cancel)
	start := time.Now()
	b := startBrowser(ctx, t)
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))

	for _, p := range pages {
		resp, err := http.Get(srv.URL + p.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != p.status {
			t.Fatalf("GET %s: status %d, want %d", p.path, resp.StatusCode, p.status)
		}
		for _, size := range sizes {
			t.Run(p.name+"/"+size.name, func(t *testing.T) {
				pageCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				r, err := b.render(pageCtx, srv.URL+p.path, size.width, size.height, size.mobile)
				if err != nil {
					t.Fatalf("rendering %s: %v\n%s", p.path, err, b.log())
				}
				if *screenshots != "" {
					must(t, os.MkdirAll(*screenshots, 0o755))
					must(t, os.WriteFile(filepath.Join(*screenshots, p.name+"-"+size.name+".png"), r.PNG, 0o644))
				}
				for _, want := range p.text {
					if !strings.Contains(r.Text, want) {
						t.Errorf("%s at %dx%d: the page's text lacks %q:\n%s", p.path, size.width, size.height, want, r.Text)
					}
				}
				if r.InnerWidth != size.width {
					t.Errorf("%s at %dx%d: laid out %d pixels wide, want the viewport's %d (viewport meta missing?)",
						p.path, size.width, size.height, r.InnerWidth, size.width)
				}
				if r.ScrollWidth > r.ClientWidth {
					t.Errorf("%s at %dx%d: content is %d pixels wide in a %d pixel viewport: it scrolls sideways",
						p.path, size.width, size.height, r.ScrollWidth, r.ClientWidth)
				}
				if r.StyleSheets < 1 {
					t.Errorf("%s at %dx%d: no stylesheet applied", p.path, size.width, size.height)
				}
				checkScreenshot(t, r.PNG, size.width, size.height)
			})
		}
	}
}

// checkScreenshot fails t unless shot is a PNG of width×height pixels with
// ink on it: at least minInk of its pixels differ clearly from the
// background, its most common colour.
func checkScreenshot(t *testing.T, shot []byte, width, height int) {
	t.Helper()
	const minInk = 0.002
	img, format, err := image.Decode(bytes.NewReader(shot))
	if err != nil || format != "png" {
		t.Fatalf("screenshot does not decode as PNG: format %q, %v", format, err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != width || bounds.Dy() != height {
		t.Fatalf("screenshot is %dx%d, want %dx%d", bounds.Dx(), bounds.Dy(), width, height)
	}
	counts := map[color.RGBA]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			counts[rgba(img.At(x, y))]++
		}
	}
	var bg color.RGBA
	for c, n := range counts {
		if n > counts[bg] {
			bg = c
		}
	}
	ink := 0
	for c, n := range counts {
		if distance(c, bg) > 96 {
			ink += n
		}
	}
	share := float64(ink) / float64(width*height)
	t.Logf("screenshot %dx%d: %d colours, background %v, %.2f%% ink", width, height, len(counts), bg, 100*share)
	if share < minInk {
		t.Errorf("screenshot is blank: %.2f%% of its pixels differ from the background %v, want at least %.2f%%",
			100*share, bg, 100*minInk)
	}
}

func rgba(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// distance is the sum of the channels' differences, 0 to 765.
func distance(a, b color.RGBA) int {
	d := func(x, y uint8) int { return max(int(x), int(y)) - min(int(x), int(y)) }
	return d(a.R, b.R) + d(a.G, b.G) + d(a.B, b.B)
}

var _ = png.Decode // registers the PNG decoder with image.Decode
