package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	icebergio "github.com/apache/iceberg-go/io"
)

// writeObject stores data at loc whole or not at all: a reader never sees
// a truncated object, even when the disk fills up mid-write. A file://
// object is written to a temporary name in the same folder, synced and
// renamed over loc; an s3:// object is one PUT, which S3 applies whole.
func writeObject(ctx context.Context, loc string, data []byte) error {
	if path, ok := localPath(loc); ok {
		return writeFileAtomic(path, data)
	}
	fsys, err := icebergio.LoadFS(ctx, storageProps(), loc)
	if err != nil {
		return err
	}
	wfs, ok := fsys.(icebergio.WriteFileIO)
	if !ok {
		return fmt.Errorf("storage for %s cannot write files", loc)
	}
	return wfs.WriteFile(loc, data)
}

// localPath returns the file system path of a file:// location.
func localPath(loc string) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return filepath.FromSlash(u.Path), true
}

// writeFileAtomic writes data to a temporary file beside path (a name
// readers skip: it does not end in .ndjson) and renames it to path.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// readLocation reads the whole object at loc; fs.ErrNotExist if absent.
func readLocation(ctx context.Context, loc string) ([]byte, error) {
	fsys, err := icebergio.LoadFS(ctx, storageProps(), loc)
	if err != nil {
		return nil, err
	}
	return readObject(fsys, loc)
}

// removeObject deletes the object at loc.
func removeObject(ctx context.Context, loc string) error {
	fsys, err := icebergio.LoadFS(ctx, storageProps(), loc)
	if err != nil {
		return err
	}
	return fsys.Remove(loc)
}

// walkObjects calls fn with the location (in root's scheme) and the file
// information of every object under root. A missing root is no objects.
func walkObjects(ctx context.Context, root string, fn func(loc string, info fs.FileInfo)) error {
	fsys, err := icebergio.LoadFS(ctx, storageProps(), root)
	if err != nil {
		return err
	}
	lfs, ok := fsys.(icebergio.ListableIO)
	if !ok {
		return fmt.Errorf("storage for %s cannot list files", root)
	}
	localRoot, local := localPath(root)
	err = lfs.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		loc := path
		if local { // LocalFS walks plain paths: give the file:// location back
			rel, rerr := filepath.Rel(localRoot, path)
			if rerr != nil {
				return rerr
			}
			loc = root + "/" + filepath.ToSlash(rel)
		}
		fn(loc, info)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list %s: %w", root, err)
	}
	return nil
}

// objectExists reports whether an object is stored at loc.
func objectExists(ctx context.Context, loc string) (bool, error) {
	fsys, err := icebergio.LoadFS(ctx, storageProps(), loc)
	if err != nil {
		return false, err
	}
	f, err := fsys.Open(loc)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = f.Close()
	return true, nil
}
