package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// instanceID names the gateway in container labels. It is stable across
// restarts for one host and data directory, so that a cgibox started after a
// crash recognises the containers its predecessor left and removes them.
func instanceID(dataDir string) string {
	h, _ := os.Hostname()
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return fmt.Sprintf("%s-%s", h, hex.EncodeToString(sum[:4]))
}

var errDataDirBusy = errors.New("data directory in use by a running cgibox")

// lockDataDir takes the data directory's lock for as long as the process
// lives (the kernel drops it when the process dies, also on SIGKILL). A
// serving cgibox holds it; `cgibox gc` checks it so that it never removes the
// containers of requests that are still running.
func lockDataDir(dataDir string) (*os.File, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "cgibox.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dataDir, errDataDirBusy)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	return f, nil
}
