package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// fsyncProbe returns the median time of 20 synchronous 4 KiB writes, each
// followed by fdatasync, to a file in dir.
func fsyncProbe(dir string) (time.Duration, error) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for range 20 {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	return medianDur(ds), nil
}

// tcpProbe returns the median round trip of 200 64-byte ping-pongs over a
// loopback TCP connection.
func tcpProbe() (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	var ds []time.Duration
	for range 200 {
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	return medianDur(ds), nil
}
