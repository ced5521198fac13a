package workers

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// ServerOptions configure the embedded nats-server.
type ServerOptions struct {
	// StoreDir is the JetStream store directory (required).
	StoreDir string
	// Listen is HOST:PORT to accept NATS clients on; empty keeps the server
	// in-process only (no socket at all). Port 0 picks a free port.
	Listen string
	// ConfigFile is an optional nats-server configuration file (accounts,
	// users, permissions, TLS); StoreDir, Listen and JetStream override it.
	ConfigFile string
	// MaxStore caps JetStream file storage in bytes (0: server default).
	MaxStore int64
	// ServerName names the server (default "kdtriage").
	ServerName string
	// Log receives the server's notices and errors (debug: everything).
	Log zerolog.Logger
}

// StartServer starts an in-process nats-server with JetStream and waits
// until it accepts connections. Stop it with Shutdown and WaitForShutdown.
func StartServer(o ServerOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("workers: ServerOptions.StoreDir is empty")
	}
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("nats-server configuration %s: %w", o.ConfigFile, err)
		}
	}
	opts.ServerName = o.ServerName
	if opts.ServerName == "" {
		opts.ServerName = "kdtriage"
	}
	opts.JetStream = true
	opts.StoreDir = o.StoreDir
	if o.MaxStore > 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	opts.NoSigs = true
	opts.DisableJetStreamBanner = true
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("--listen %q: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("--listen %q: bad port", o.Listen)
		}
		opts.Host, opts.Port = host, p
		if p == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", err)
	}
	s.SetLoggerV2(&natsLogger{log: o.Log}, o.Log.GetLevel() <= zerolog.DebugLevel, o.Log.GetLevel() <= zerolog.TraceLevel, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats-server did not become ready within 30s")
	}
	return s, nil
}

// ConnectEmbedded connects to an embedded server in-process (no socket).
func ConnectEmbedded(s *server.Server, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s), nats.Name(name), nats.MaxReconnects(-1)}, opts...)
	return nats.Connect("", opts...)
}

// natsLogger routes nats-server logs to zerolog.
type natsLogger struct{ log zerolog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Info().Msgf("nats: "+format, v...) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf("nats: "+format, v...) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf("nats: "+format, v...) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf("nats: "+format, v...) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf("nats: "+format, v...) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf("nats: "+format, v...) }

// ConnectOptions describe how to reach an external NATS server or cluster.
type ConnectOptions struct {
	// URL is one or more comma-separated server URLs.
	URL string
	// Name is the connection name shown by the server.
	Name string
	// CredsFile is a decentralised-auth credentials file (JWT + seed).
	CredsFile string
	// NKeySeedFile is an nkey seed file.
	NKeySeedFile string
	// User and Password authenticate with a user name; Token with a token.
	User, Password, Token string
	// CAFile verifies the server; CertFile and KeyFile authenticate the
	// client (mutual TLS).
	CAFile, CertFile, KeyFile string
	// Timeout bounds the initial connection (default 5s).
	Timeout time.Duration
	// Log receives connection events.
	Log zerolog.Logger
}

// Connect connects to NATS with opts. The connection reconnects forever.
func Connect(o ConnectOptions) (*nats.Conn, error) {
	if o.URL == "" {
		return nil, errors.New("workers: no NATS URL")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	log := o.Log
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil { // our own Close
				log.Debug().Msg("NATS connection closed")
				return
			}
			log.Warn().Err(err).Msg("NATS disconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", o.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", o.URL, err)
	}
	return nc, nil
}
