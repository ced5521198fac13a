// Package symbols maps module identities found in crash dumps to symbol
// files: it parses WinDbg symbol paths (_NT_SYMBOL_PATH syntax), builds
// symbol-store keys for PE images, PDBs and Breakpad .sym files, and fetches
// files from SymStore-layout stores: local directories (flat, two-tier with
// index2.txt, file.ptr redirections), compressed "_" files (CAB/MSZIP, see
// package symbols/cab) and HTTP(S) symbol servers behind on-disk caches.
//
// # Keys
//
// A Key is Name/ID/File. ImageKey builds the PE-image form: TimeDateStamp
// as 8 uppercase hex digits, SizeOfImage in lowercase hex without padding
// ("%08X%x", as Breakpad/Crashpad's code identifiers write it; Microsoft's
// own documentation example is all lowercase, and servers on Windows file
// systems ignore case). PDBKey builds the PDB form: the GUID as 32 uppercase
// hex digits (Data1, Data2, Data3 as integers, then the Data4 bytes) and the
// age in uppercase hex without padding, as symchk-style tools print it.
// NB10Key uses the 32-bit signature (%08X) instead of the GUID. BreakpadKey
// builds debug-file/debug-ID/name.sym. Local stores on case-sensitive file
// systems are also searched with a lowercase ID and/or name.
//
// Keys come from untrusted dumps: Key.Validate rejects every part that
// could leave a store directory ("." and "..", names starting with "..",
// '/' and '\', ':' so no drive letters or NTFS streams, NUL and control
// characters, trailing dots and spaces, Windows device names such as NUL
// or COM1.pdb), and every store validates before it touches the file
// system or the network. Writes into a cache never go through a symbolic
// link below the cache root, and a directory named index2.txt (a module
// of that name) does not make a store two-tier: only a regular file does.
//
// # Lookup order
//
// A Chain asks the elements of a Path in order. Within a srv* element it
// looks in the downstream stores nearest first, then the upstream; in each
// store it tries NAME/ID/FILE, then the compressed NAME/ID/FIL_ (a CAB),
// then NAME/ID/file.ptr. A file found further out is copied (and unpacked)
// into every store in front of it, as symsrv does, with atomic writes
// (temporary file plus rename) so concurrent readers and processes never
// see partial files. A cache*DIR element makes every later element cache
// its finds in DIR too. A plain directory element is searched in store
// layout and then by name (DIR/FILE, DIR/ext/FILE, DIR/symbols/ext/FILE);
// a match by name is reported with Found.Exact false, and its identity must
// be checked by the caller. Chain.Candidates lists every location in order.
//
// file.ptr holds "PATH:<path>" (or a bare path), which is followed, or
// "MSG:<text>", which is returned as a *PointerError wrapping
// ErrPointerMessage. A Windows UNC path cannot be opened elsewhere and
// counts as a miss. On an HTTP server, a file.ptr PATH counts as a miss.
//
// # HTTP servers
//
// Each request attempt is bounded by Options.Timeout; 5xx, 408, 429,
// timeouts and connection errors are retried with exponential backoff
// (Options.Backoff doubling, plus jitter), 404/410 are misses, other 4xx
// are errors. A server that fails a request through all its retries is
// skipped for a minute (reported as a store failure), so that a dead
// server does not cost every module the whole retry budget. Downloads are
// capped at Options.MaxFileSize. A miss (all of
// FILE, FIL_ and file.ptr absent) is remembered per server for
// Options.NegativeTTL, in memory and, with Options.NegativeCacheFile, on
// disk. Concurrent Fetch calls for one key share a single lookup, so a file
// is downloaded once however many goroutines ask. Options.Offline answers
// from the caches only.
//
// # Default downstream store
//
// WinDbg puts files fetched through "srv*URL" or "srv**URL", and those
// cached by "cache*", in a default downstream store (the sym directory of the
// debugger installation). This package has no default of its own: the
// caller sets Options.DefaultCache. The kdtriage CLI uses --symbol-cache,
// the config key symbols.cache, or else DefaultCacheDir(os.UserCacheDir()),
// i.e. $XDG_CACHE_HOME/kdtriage/sym (~/.cache/kdtriage/sym). A bare "srv*"
// means the Microsoft public server behind the default store, like
// WinDbg's .symfix.
//
// # Which symbol path
//
// EffectivePath picks the path by precedence: a command-line flag, then the
// configuration (symbols.path or KDTRIAGE_SYMBOLS_PATH), then
// _NT_SYMBOL_PATH. It reads no environment itself.
package symbols
