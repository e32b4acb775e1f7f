package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Init writes the files of src (a project tree: elt.yaml, migrations/, views/, sql/) into dir, which must
// not hold a project already; readme, when not empty, names the file of src written as dir/README.md. It
// returns the files written, relative to dir.
func Init(dir string, src fs.FS, readme string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a project (%s): pick an empty folder", dir, ConfigFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var written []string
	err := fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		target := name
		switch {
		case name == readme:
			target = "README.md"
		case strings.HasPrefix(name, "docs/"):
			return nil
		}
		b, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, filepath.FromSlash(target))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		written = append(written, target)
		return nil
	})
	if err != nil {
		return written, fmt.Errorf("write project into %s: %w", dir, err)
	}
	return written, nil
}
