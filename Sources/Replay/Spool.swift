import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// Writes statements to a fresh temporary text trace, for an engine replaying in a process of
/// its own; the caller removes it with `removeSpool`.
func spool(_ statements: [Statement]) throws(TraceError) -> String {
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(dir)/pinreplay-spool-XXXXXX.txt".utf8CString)
    let fd = mkstemps(&template, 4)
    guard fd >= 0 else { throw TraceError.io(file: dir, "cannot create a spool file for an isolated engine") }
    close(fd)
    let path = String(cString: template)
    let w = try TraceWriter(path: path, form: .text)
    for s in statements { try w.write(s) }
    try w.finish()
    return path
}

/// Removes a spool file.
func removeSpool(_ path: String) { unlink(path) }
