// Package mongo implements storage.Metadata in MongoDB (or a server that speaks its wire
// protocol, such as FerretDB), the metadata store that several gofer replicas share. Each
// version is one document in the collection "versions", inserted once, and a zip committed
// after its version's record is one document in "zips"; a unique index on (path, version) of
// each, created at Open, is what makes the insert the commit and the only concurrency
// guarantee the package relies on. A version's document also holds the time of its insert,
// storedAt, which orders Index. It must never update, replace or delete a
// record, and never use transactions, TTL indexes or read-modify-write operations: stored
// versions are immutable, and FerretDB does not make updates atomic.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

var _ storage.Metadata = (*Store)(nil)

const (
	// Without these the driver waits 30s to select a server: an unreachable database should
	// fail a start or a request quickly, as unavailable, rather than hold it. A URI that sets
	// serverSelectionTimeoutMS or connectTimeoutMS wins.
	serverSelectionTimeout = 5 * time.Second
	connectTimeout         = 5 * time.Second
	operationTimeout       = 10 * time.Second
	// closeTimeout bounds Close, which has no context, while it waits for connections in use.
	closeTimeout = 10 * time.Second

	collection, zipCollection = "versions", "zips"
	// indexName is fixed so that every replica's Open creates the same index, which MongoDB
	// then accepts as already existing.
	indexName = "path_version_unique"
	// orderIndexName is the index Index reads: by storedAt, and by fetchedAt for the documents
	// inserted before there was a storedAt.
	orderIndexName = "storedAt_fetchedAt"

	// clockSkew is what Index allows for between the clocks of the processes that insert.
	clockSkew = 2 * time.Second
)

// Store is a Metadata store in one MongoDB database. Create it with Open; it is safe for
// concurrent use, and any number of Stores (in any number of processes) may share a database.
type Store struct {
	client *mongodrv.Client
	coll   *mongodrv.Collection
	zips   *mongodrv.Collection
	hosts  string // for errors; never the URI, which may hold a password
	// settle is how long the newest versions are held back from Index. Inserts from many
	// processes take their times before they commit, so a version could otherwise commit after
	// one with a later time had been listed, and be lost to a client paging on. An insert ends
	// within the operation timeout (the server too gives it up then); clockSkew allows for the
	// clocks.
	settle time.Duration
}

// Open connects to the server at uri, checks that it answers, and creates the unique index on
// (path, version) of the collections "versions" and "zips" in database if it is missing. An unreachable
// server fails within about five seconds with an error matching gofer.ErrUnavailable.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	if database == "" {
		return nil, errors.New("mongo: open: no database name")
	}
	opts := options.Client().ApplyURI(uri)
	if err := opts.Validate(); err != nil {
		// The driver's message may quote the URI, password included.
		return nil, fmt.Errorf("mongo: open: invalid URI %s: %s", redact(uri), scrub(err.Error(), uri))
	}
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(serverSelectionTimeout)
	}
	if opts.ConnectTimeout == nil {
		opts.SetConnectTimeout(connectTimeout)
	}
	if opts.Timeout == nil {
		// Every operation ends by then, so that a server that stalls (rather than refusing
		// connections) cannot hold a request forever.
		opts.SetTimeout(operationTimeout)
	}
	opts.SetMonitor((&commandSpans{}).monitor())
	hosts := strings.Join(opts.Hosts, ",")
	client, err := mongodrv.Connect(opts)
	if err != nil {
		return nil, classify(err, "open", database+" on "+hosts)
	}
	db := client.Database(database)
	s := &Store{client: client, coll: db.Collection(collection), zips: db.Collection(zipCollection), hosts: hosts,
		settle: *opts.Timeout + clockSkew}
	// Connect only starts monitoring; Ping is what finds out whether the server is there.
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		s.disconnect()
		return nil, classify(err, "open", database+" on "+hosts)
	}
	for _, c := range []*mongodrv.Collection{s.coll, s.zips} {
		_, err = c.Indexes().CreateOne(ctx, mongodrv.IndexModel{
			Keys:    bson.D{{Key: "path", Value: 1}, {Key: "version", Value: 1}},
			Options: options.Index().SetName(indexName).SetUnique(true),
		})
		if err != nil {
			s.disconnect()
			return nil, classify(err, "create index on", database+"."+c.Name()+" on "+hosts)
		}
	}
	_, err = s.coll.Indexes().CreateOne(ctx, mongodrv.IndexModel{
		Keys:    bson.D{{Key: "storedAt", Value: 1}, {Key: "fetchedAt", Value: 1}},
		Options: options.Index().SetName(orderIndexName),
	})
	if err != nil {
		s.disconnect()
		return nil, classify(err, "create index on", database+"."+collection+" on "+hosts)
	}
	return s, nil
}

// Insert stores v unless a record for its path and version exists, with the time of its
// insert.
func (s *Store) Insert(ctx context.Context, v gofer.Version) error {
	return s.insert(ctx, s.coll, "insert", v, stored{v, time.Now()})
}

// stored is the document of a version: its record and the time of its insert.
type stored struct {
	gofer.Version `bson:",inline"`
	StoredAt      time.Time `bson:"storedAt"`
}

// InsertZip stores z unless a record of the zip of its path and version exists.
func (s *Store) InsertZip(ctx context.Context, z gofer.Version) error {
	return s.insert(ctx, s.zips, "insert zip", z, z)
}

// insert inserts doc, the document of v, into c.
func (s *Store) insert(ctx context.Context, c *mongodrv.Collection, op string, v gofer.Version, doc any) error {
	// The unique index would accept one record with an empty path or version, and it would
	// then stand for every malformed request.
	if v.Path == "" || v.Version == "" {
		return gofer.Errorf(gofer.ErrInvalid, "mongo: %s %q@%q: not a module path and version", op, v.Path, v.Version)
	}
	// The driver adds an ObjectID _id; the record itself is keyed by the unique index alone.
	_, err := c.InsertOne(ctx, doc)
	return classify(err, op, v.Path+"@"+v.Version)
}

// Get returns the record of path@version; the record of a version stored without its zip
// costs a second query, for the zip's record.
func (s *Store) Get(ctx context.Context, path, version string) (gofer.Version, error) {
	v, err := find(ctx, s.coll, path, version)
	if err != nil || v.HasZip() {
		return v, classify(err, "get", path+"@"+version)
	}
	z, err := find(ctx, s.zips, path, version)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return v, nil
	} else if err != nil {
		return gofer.Version{}, classify(err, "get zip of", path+"@"+version)
	}
	return v.WithZip(z), nil
}

// GetZip returns the record of the zip of path@version stored by InsertZip.
func (s *Store) GetZip(ctx context.Context, path, version string) (gofer.Version, error) {
	z, err := find(ctx, s.zips, path, version)
	return z, classify(err, "get zip of", path+"@"+version)
}

func find(ctx context.Context, c *mongodrv.Collection, path, version string) (gofer.Version, error) {
	var v gofer.Version
	if err := c.FindOne(ctx, bson.D{{Key: "path", Value: path}, {Key: "version", Value: version}}).Decode(&v); err != nil {
		return gofer.Version{}, err
	}
	// MongoDB keeps milliseconds and no location; UTC makes a record read back print and
	// compare as it was written, whatever the driver's decoding options.
	v.Time, v.FetchedAt = v.Time.UTC(), v.FetchedAt.UTC()
	return v, nil
}

// Versions lists the stored versions of path.
func (s *Store) Versions(ctx context.Context, path string) ([]string, error) {
	// The filter is a prefix of the unique index, so the listing is an index scan; only the
	// version field travels back.
	cur, err := s.coll.Find(ctx, bson.D{{Key: "path", Value: path}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "version", Value: 1}}))
	if err != nil {
		return nil, classify(err, "versions", path)
	}
	var docs []struct {
		Version string `bson:"version"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, classify(err, "versions", path)
	}
	versions := make([]string, len(docs))
	for i, d := range docs {
		versions[i] = d.Version
	}
	return versions, nil
}

// Catalog lists stored versions ordered by path, then version.
func (s *Store) Catalog(ctx context.Context, after module.Version, limit int) ([]module.Version, error) {
	if limit <= 0 {
		return nil, nil
	}
	// Without a collation strings compare as bytes. The filter and the sort both follow the
	// unique index on (path, version), so a page needs neither a collection scan nor a sort.
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "path", Value: bson.D{{Key: "$gt", Value: after.Path}}}},
		bson.D{{Key: "path", Value: after.Path}, {Key: "version", Value: bson.D{{Key: "$gt", Value: after.Version}}}},
	}}}
	opts := options.Find().
		SetSort(bson.D{{Key: "path", Value: 1}, {Key: "version", Value: 1}}).
		SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "path", Value: 1}, {Key: "version", Value: 1}})
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, classify(err, "catalog after", after.Path+"@"+after.Version)
	}
	var docs []struct {
		Path    string `bson:"path"`
		Version string `bson:"version"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, classify(err, "catalog after", after.Path+"@"+after.Version)
	}
	list := make([]module.Version, len(docs))
	for i, d := range docs {
		list[i] = module.Version{Path: d.Path, Version: d.Version}
	}
	return list, nil
}

// Index lists stored versions by the time of their inserts, those of the last s.settle held
// back. Documents inserted before storedAt existed come first, by their fetch times:
// every one of them was inserted before any document that has one.
func (s *Store) Index(ctx context.Context, since time.Time, limit int) ([]storage.Stored, error) {
	op := "index since"
	if limit <= 0 {
		return nil, nil
	}
	legacy, err := s.order(ctx, "fetchedAt", bson.D{
		{Key: "storedAt", Value: bson.D{{Key: "$exists", Value: false}}},
		{Key: "fetchedAt", Value: bson.D{{Key: "$gt", Value: since}}},
	}, limit)
	if err != nil || len(legacy) == limit {
		return legacy, classify(err, op, since.Format(time.RFC3339Nano))
	}
	list, err := s.order(ctx, "storedAt", bson.D{{Key: "storedAt", Value: bson.D{
		{Key: "$gt", Value: since}, {Key: "$lte", Value: time.Now().Add(-s.settle)},
	}}}, limit-len(legacy))
	return append(legacy, list...), classify(err, op, since.Format(time.RFC3339Nano))
}

// order lists at most limit versions that match filter, by the time field, with that time.
func (s *Store) order(ctx context.Context, field string, filter bson.D, limit int) ([]storage.Stored, error) {
	opts := options.Find().SetSort(bson.D{{Key: field, Value: 1}}).SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "path", Value: 1}, {Key: "version", Value: 1}, {Key: field, Value: 1}})
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []bson.M
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	list := make([]storage.Stored, 0, len(docs))
	for _, d := range docs {
		path, _ := d["path"].(string)
		version, _ := d["version"].(string)
		t, _ := d[field].(bson.DateTime)
		list = append(list, storage.Stored{Path: path, Version: version, Timestamp: t.Time().UTC()})
	}
	return list, nil
}

// Close disconnects from the server.
func (s *Store) Close() error {
	if err := s.disconnect(); err != nil {
		return fmt.Errorf("mongo: close connection to %s: %w", s.hosts, err)
	}
	return nil
}

func (s *Store) disconnect() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// classify is the one place driver errors become gofer's kinds: a missing document is not
// found, a unique-index violation is exists, and everything else (network errors, server
// selection timeouts, an expired context, a server error) is unavailable, because it may heal
// and retrying it is the safe answer. The driver's error stays wrapped for its detail.
func classify(err error, op, key string) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongodrv.ErrNoDocuments):
		kind = gofer.ErrNotFound
	case mongodrv.IsDuplicateKeyError(err):
		kind = gofer.ErrExists
	default:
		kind = gofer.ErrUnavailable
	}
	return fmt.Errorf("mongo: %s %s: %w: %w", op, key, kind, err)
}

// redact returns uri with the password of its user info, if any, replaced by "xxxxx".
func redact(uri string) string {
	if pw := password(uri); pw != "" {
		return strings.Replace(uri, ":"+pw+"@", ":xxxxx@", 1)
	}
	return uri
}

// scrub removes the password of uri, raw or unescaped, from msg.
func scrub(msg, uri string) string {
	pw := password(uri)
	if pw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, pw, "xxxxx")
	if u, err := url.PathUnescape(pw); err == nil && u != "" {
		msg = strings.ReplaceAll(msg, u, "xxxxx")
	}
	return msg
}

// password finds the password in the user info of a mongodb:// or mongodb+srv:// URI by
// hand, because net/url rejects the comma-separated host lists such URIs allow.
func password(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	// The URI spec requires "/", "@" and ":" in user info to be percent-encoded, so the
	// authority ends at the first "/" and the user info at the last "@" before it.
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}
