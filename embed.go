// Package elt carries the SQL of the elt pipeline: the versioned migrations (migrations/), the mart
// definitions they include (views/), and the transform steps and data checks run by elt refresh (sql/).
//
// Embedding them here, at the root of the module, keeps the SQL in the top-level folders a DBA expects while
// the binary still ships every statement it can run.
package elt

import (
	"embed"
	"io/fs"
	"path"
)

//go:embed migrations/*.sql views
var sqlFiles embed.FS

//go:embed sql
var SQL embed.FS

// Migrations is the file system tern loads: the migration files at its root and the views/ folder beside
// them, so a migration includes a view with {{ template "views/name.sql" . }}.
var Migrations fs.FS = migrationFS{files: sqlFiles}

// migrationFS presents migrations/ as the root and views/ as a subfolder of it.
type migrationFS struct{ files embed.FS }

func (m migrationFS) resolve(name string) string {
	if name == "views" || path.Dir(name) == "views" {
		return name
	}
	return path.Join("migrations", name)
}

// Open opens name, mapping it onto the embedded tree.
func (m migrationFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return m.files.Open(m.resolve(name))
}

// ReadDir lists name; the root lists the migration files and the views folder.
func (m migrationFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	entries, err := m.files.ReadDir(m.resolve(name))
	if err != nil || name != "." {
		return entries, err
	}
	views, err := fs.Stat(m.files, "views")
	if err != nil {
		return nil, err
	}
	return append(entries, fs.FileInfoToDirEntry(views)), nil
}
