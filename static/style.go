package static

// pageStyle is the one stylesheet of the pages cgibox writes itself, the
// directory listing and the error pages, inlined in each so that a page
// needs no second request. It makes them readable on a phone (with the
// viewport meta each page also carries) and in dark mode without changing
// Python's structure: an h1, then paragraphs or one <ul> of <li><a href>.
const pageStyle = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;` +
	`max-width:60rem;margin:0 auto;padding:1rem;line-height:1.4;color:#1f2328;background:#fff}` +
	`h1{font-size:1.3rem;font-weight:600;overflow-wrap:anywhere}` +
	`p{overflow-wrap:anywhere}` +
	`hr{border:0;border-top:1px solid #d0d7de}` +
	`ul{list-style:none;margin:0;padding:0}` +
	`li{border-bottom:1px solid #eaeef2}` +
	`li a{display:block;padding:.6rem .4rem;text-decoration:none;color:#0969da;overflow-wrap:anywhere}` +
	`li a:hover,li a:focus{background:#f6f8fa;text-decoration:underline}` +
	`@media (prefers-color-scheme:dark){body{color:#e6edf3;background:#0d1117}` +
	`hr,li{border-color:#30363d}li a{color:#58a6ff}li a:hover,li a:focus{background:#161b22}}`
