package static

import "strings"

// ContentType returns the MIME type Python's SimpleHTTPRequestHandler sends
// for name (a file name or a slash-separated path; only its last component
// counts), with no charset parameter, exactly as Python does.
//
// Python's guess_type is reproduced step by step: its own overrides for
// compressed files (.gz .Z .bz2 .xz, case-sensitive, then lower-cased), then
// mimetypes.guess_type — the suffix map (.tgz → .tar.gz, .svgz → .svg.gz, …),
// a case-sensitive encoding suffix (.gz .Z .bz2 .xz .br) stripped once, the
// remaining extension looked up lower-cased — then application/octet-stream.
//
// The table is built in (never the host's /etc/mime.types, which differs
// between machines). It holds Python 3.11's default table as Python reports
// it on Debian and Ubuntu, where python3 depends on media-types and Python
// lets /etc/mime.types override its defaults (so .js is text/javascript and
// .xml application/xml there), plus the common web types that only that file
// supplies (.md, .webp, .woff2, …). An extension outside the table is
// application/octet-stream here even if some host's mime.types knows it.
func ContentType(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	base, ext := splitExt(name)
	if t := compressedType(ext); t != "" {
		return t
	}
	if t := compressedType(strings.ToLower(ext)); t != "" {
		return t
	}
	// mimetypes.guess_type from here on. Every suffix-map target ends in an
	// encoding suffix that is not itself in the map, so this loop ends.
	for {
		s := suffixTarget(strings.ToLower(ext))
		if s == "" {
			break
		}
		base, ext = splitExt(base + s)
	}
	if isEncodingSuffix(ext) {
		_, ext = splitExt(base)
	}
	if t := typeByExtension(strings.ToLower(ext)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// splitExt is Python's posixpath.splitext: the extension starts at the last
// dot of the last component, unless that component is only leading dots
// before it (".profile" has no extension).
func splitExt(p string) (root, ext string) {
	sep := strings.LastIndexByte(p, '/')
	dot := strings.LastIndexByte(p, '.')
	if dot <= sep {
		return p, ""
	}
	for i := sep + 1; i < dot; i++ {
		if p[i] != '.' {
			return p[:dot], p[dot:]
		}
	}
	return p, ""
}

// compressedType is SimpleHTTPRequestHandler.extensions_map: compressed
// files are served as what they are, not as the type of their content.
func compressedType(ext string) string {
	switch ext {
	case ".gz":
		return "application/gzip"
	case ".Z":
		return "application/octet-stream"
	case ".bz2":
		return "application/x-bzip2"
	case ".xz":
		return "application/x-xz"
	}
	return ""
}

// suffixTarget is mimetypes.suffix_map (looked up lower-cased).
func suffixTarget(ext string) string {
	switch ext {
	case ".svgz":
		return ".svg.gz"
	case ".tgz", ".taz", ".tz":
		return ".tar.gz"
	case ".tbz2":
		return ".tar.bz2"
	case ".txz":
		return ".tar.xz"
	}
	return ""
}

// isEncodingSuffix is mimetypes.encodings_map (case-sensitive).
func isEncodingSuffix(ext string) bool {
	switch ext {
	case ".gz", ".Z", ".bz2", ".xz", ".br":
		return true
	}
	return false
}

// typeByExtension maps a lower-case extension to its type. The values are
// what python3 -m http.server sends on Debian bookworm (Python 3.11 with
// media-types); mime_test.go checks them against a local python3.
func typeByExtension(ext string) string {
	switch ext {
	case ".oda":
		return "application/ODA"
	case ".atom":
		return "application/atom+xml"
	case ".epub":
		return "application/epub+zip"
	case ".geojson":
		return "application/geo+json"
	case ".jar":
		return "application/java-archive"
	case ".json":
		return "application/json"
	case ".jsonld":
		return "application/ld+json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".doc", ".wiz":
		return "application/msword"
	case ".nq":
		return "application/n-quads"
	case ".nt":
		return "application/n-triples"
	case ".bin", ".so":
		return "application/octet-stream"
	case ".ogx":
		return "application/ogg"
	case ".pdf":
		return "application/pdf"
	case ".pem":
		return "application/pem-certificate-chain"
	case ".sig":
		return "application/pgp-signature"
	case ".p12", ".pfx":
		return "application/pkcs12"
	case ".p7c":
		return "application/pkcs7-mime"
	case ".ai", ".eps", ".ps":
		return "application/postscript"
	case ".rdf":
		return "application/rdf+xml"
	case ".rtf":
		return "application/rtf"
	case ".sql":
		return "application/sql"
	case ".trig":
		return "application/trig"
	case ".swf":
		return "application/vnd.adobe.flash.movie"
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".deb":
		return "application/vnd.debian.binary-package"
	case ".kml":
		return "application/vnd.google-earth.kml+xml"
	case ".kmz":
		return "application/vnd.google-earth.kmz"
	case ".mif":
		return "application/vnd.mif"
	case ".cab":
		return "application/vnd.ms-cab-compressed"
	case ".xlb", ".xls":
		return "application/vnd.ms-excel"
	case ".eot":
		return "application/vnd.ms-fontobject"
	case ".ppa", ".pps", ".ppt", ".pwz":
		return "application/vnd.ms-powerpoint"
	case ".odp":
		return "application/vnd.oasis.opendocument.presentation"
	case ".ods":
		return "application/vnd.oasis.opendocument.spreadsheet"
	case ".odt":
		return "application/vnd.oasis.opendocument.text"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".rar":
		return "application/vnd.rar"
	case ".sqlite":
		return "application/vnd.sqlite3"
	case ".wasm":
		return "application/wasm"
	case ".wsdl":
		return "application/wsdl+xml"
	case ".7z":
		return "application/x-7z-compressed"
	case ".dmg":
		return "application/x-apple-diskimage"
	case ".bcpio":
		return "application/x-bcpio"
	case ".torrent":
		return "application/x-bittorrent"
	case ".cdf":
		return "application/x-cdf"
	case ".cpio":
		return "application/x-cpio"
	case ".dvi":
		return "application/x-dvi"
	case ".gtar":
		return "application/x-gtar"
	case ".hdf":
		return "application/x-hdf"
	case ".h5":
		return "application/x-hdf5"
	case ".iso":
		return "application/x-iso9660-image"
	case ".latex":
		return "application/x-latex"
	case ".bat", ".dll", ".exe":
		return "application/x-msdos-program"
	case ".msi":
		return "application/x-msi"
	case ".nc":
		return "application/x-netcdf"
	case ".o":
		return "application/x-object"
	case ".pyc", ".pyo":
		return "application/x-python-code"
	case ".rpm":
		return "application/x-redhat-package-manager"
	case ".rss":
		return "application/x-rss+xml"
	case ".rb":
		return "application/x-ruby"
	case ".shar":
		return "application/x-shar"
	case ".sv4cpio":
		return "application/x-sv4cpio"
	case ".sv4crc":
		return "application/x-sv4crc"
	case ".tar":
		return "application/x-tar"
	case ".texi", ".texinfo":
		return "application/x-texinfo"
	case ".man":
		return "application/x-troff-man"
	case ".me":
		return "application/x-troff-me"
	case ".ms":
		return "application/x-troff-ms"
	case ".ustar":
		return "application/x-ustar"
	case ".src":
		return "application/x-wais-source"
	case ".crt":
		return "application/x-x509-ca-cert"
	case ".xht", ".xhtml":
		return "application/xhtml+xml"
	case ".xml", ".xpdl":
		return "application/xml"
	case ".dtd":
		return "application/xml-dtd"
	case ".xsl", ".xslt":
		return "application/xslt+xml"
	case ".zip":
		return "application/zip"
	case ".zst":
		return "application/zstd"
	case ".3gp", ".3gpp":
		return "audio/3gpp"
	case ".3g2", ".3gpp2":
		return "audio/3gpp2"
	case ".aac", ".adts", ".ass":
		return "audio/aac"
	case ".au", ".snd":
		return "audio/basic"
	case ".flac":
		return "audio/flac"
	case ".m4a":
		return "audio/mp4"
	case ".mp2", ".mp3":
		return "audio/mpeg"
	case ".m3u":
		return "audio/mpegurl"
	case ".oga", ".ogg", ".opus", ".spx":
		return "audio/ogg"
	case ".mid":
		return "audio/sp-midi"
	case ".loas":
		return "audio/usac"
	case ".aif", ".aifc", ".aiff":
		return "audio/x-aiff"
	case ".ra", ".ram":
		return "audio/x-pn-realaudio"
	case ".wav":
		return "audio/x-wav"
	case ".otf":
		return "font/otf"
	case ".ttf":
		return "font/ttf"
	case ".woff":
		return "font/woff"
	case ".woff2":
		return "font/woff2"
	case ".apng":
		return "image/apng"
	case ".avif":
		return "image/avif"
	case ".bmp":
		return "image/bmp"
	case ".gif":
		return "image/gif"
	case ".heic":
		return "image/heic"
	case ".heif":
		return "image/heif"
	case ".ief":
		return "image/ief"
	case ".jfif", ".jpe", ".jpeg", ".jpg":
		return "image/jpeg"
	case ".jxl":
		return "image/jxl"
	case ".png":
		return "image/png"
	case ".svg":
		return "image/svg+xml"
	case ".tif", ".tiff":
		return "image/tiff"
	case ".psd":
		return "image/vnd.adobe.photoshop"
	case ".ico":
		return "image/vnd.microsoft.icon"
	case ".webp":
		return "image/webp"
	case ".ras":
		return "image/x-cmu-raster"
	case ".pnm":
		return "image/x-portable-anymap"
	case ".pbm":
		return "image/x-portable-bitmap"
	case ".pgm":
		return "image/x-portable-graymap"
	case ".ppm":
		return "image/x-portable-pixmap"
	case ".rgb":
		return "image/x-rgb"
	case ".xbm":
		return "image/x-xbitmap"
	case ".xpm":
		return "image/x-xpixmap"
	case ".xwd":
		return "image/x-xwindowdump"
	case ".eml", ".mht", ".mhtml", ".nws":
		return "message/rfc822"
	case ".obj":
		return "model/obj"
	case ".sgm", ".sgml":
		return "text/SGML"
	case ".ics":
		return "text/calendar"
	case ".css":
		return "text/css"
	case ".csv":
		return "text/csv"
	case ".htm", ".html", ".shtml":
		return "text/html"
	case ".js", ".mjs":
		return "text/javascript"
	case ".markdown", ".md":
		return "text/markdown"
	case ".n3":
		return "text/n3"
	case ".ksh", ".pot", ".srt", ".text", ".txt":
		return "text/plain"
	case ".rtx":
		return "text/richtext"
	case ".tsv":
		return "text/tab-separated-values"
	case ".roff", ".t", ".tr":
		return "text/troff"
	case ".vcard", ".vcf":
		return "text/vcard"
	case ".a":
		return "text/vnd.a"
	case ".dot":
		return "text/vnd.graphviz"
	case ".vtt":
		return "text/vtt"
	case ".bib":
		return "text/x-bibtex"
	case ".h":
		return "text/x-chdr"
	case ".csh":
		return "text/x-csh"
	case ".c":
		return "text/x-csrc"
	case ".diff", ".patch":
		return "text/x-diff"
	case ".hs":
		return "text/x-haskell"
	case ".java":
		return "text/x-java"
	case ".pl", ".pm":
		return "text/x-perl"
	case ".py":
		return "text/x-python"
	case ".scala":
		return "text/x-scala"
	case ".etx":
		return "text/x-setext"
	case ".sh":
		return "text/x-sh"
	case ".tcl":
		return "text/x-tcl"
	case ".tex":
		return "text/x-tex"
	case ".m4v", ".mp4":
		return "video/mp4"
	case ".m1v", ".mpa", ".mpe", ".mpeg", ".mpg":
		return "video/mpeg"
	case ".ogv":
		return "video/ogg"
	case ".mov", ".qt":
		return "video/quicktime"
	case ".webm":
		return "video/webm"
	case ".flv":
		return "video/x-flv"
	case ".mkv":
		return "video/x-matroska"
	case ".avi":
		return "video/x-msvideo"
	case ".movie":
		return "video/x-sgi-movie"
	}
	return ""
}
