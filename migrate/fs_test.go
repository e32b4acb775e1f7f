package migrate_test

import (
	"io/fs"
	"testing/fstest"
)

// fsOf is a file system of files with the given contents.
func fsOf(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}
