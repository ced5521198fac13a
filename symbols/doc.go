// Package symbols maps module identities found in crash dumps to symbol
// files: it parses WinDbg symbol paths (_NT_SYMBOL_PATH syntax), builds
// symbol-store keys for PE images, PDBs and Breakpad .sym files, and fetches
// files from SymStore-layout stores: local directories (flat, two-tier with
// index2.txt, file.ptr redirections), compressed "_" files (CAB/MSZIP, see
// package symbols/cab) and HTTP(S) symbol servers behind on-disk caches.
//
// # Keys
//
// A Key is Name/ID/File. ImageKey builds the PE-image form
// (TimeDateStamp as %08X, SizeOfImage as %x), PDBKey the PDB form (GUID as
// 32 uppercase hex digits, age as %X), BreakpadKey the Breakpad form
// (debug file, debug ID, name.sym). Keys come from untrusted dumps:
// Key.Validate rejects every part that could leave a store directory
// ("..", separators, drive letters, NUL) and every store validates before it
// touches the file system.
//
// # Default downstream store
//
// WinDbg puts files fetched through "srv*URL" or "srv**URL", and those
// cached by "cache*", in a default downstream store (the sym directory of the
// debugger installation). This package has no default of its own: the
// caller sets Options.DefaultCache. The kdtriage CLI uses DefaultCacheDir of
// os.UserCacheDir(), i.e. $XDG_CACHE_HOME/kdtriage/sym (~/.cache/kdtriage/sym).
package symbols
