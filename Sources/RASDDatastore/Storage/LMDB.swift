import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thin owner of an LMDB environment with one unnamed database.
///
/// rasd writes a datastore in one write transaction and reads it through one long-lived read
/// transaction per open ``Datastore``: pointers returned by ``ReadTransaction/get(_:)`` point
/// into the memory map and stay valid while that transaction is open (zero-copy reads).
final class LMDBEnvironment: @unchecked Sendable {
    // @unchecked: the environment handle is thread-safe in LMDB; this class only closes it in deinit.
    let env: OpaquePointer
    let path: String
    let readOnly: Bool

    /// Opens (or creates, when not read-only) the environment in directory `path`.
    init(path: String, readOnly: Bool, mapSize: Int = 0) throws {
        self.path = path
        self.readOnly = readOnly
        // NOTLS: a read transaction belongs to the Datastore object, not to a thread.
        // NORDAHEAD: queries touch scattered pages; read-ahead would only waste page cache.
        var flags = UInt32(MDB_NOTLS | MDB_NORDAHEAD)
        if readOnly { flags |= UInt32(MDB_RDONLY) }
        do {
            env = try Self.open(path: path, flags: flags, mapSize: mapSize)
        } catch let error as DatastoreError where readOnly && (error.code == EACCES || error.code == EROFS) {
            // A datastore on a read-only medium: the lock file cannot be created. Datastores are
            // immutable once built, so readers without a lock table are safe.
            env = try Self.open(path: path, flags: flags | UInt32(MDB_NOLOCK), mapSize: mapSize)
        }
    }

    private static func open(path: String, flags: UInt32, mapSize: Int) throws -> OpaquePointer {
        var envp: OpaquePointer?
        try check(mdb_env_create(&envp), path: path, "cannot create an LMDB environment")
        guard let env = envp else { throw DatastoreError(.lmdb, path: path, "mdb_env_create returned no handle") }
        var rc: Int32 = 0
        if mapSize > 0 { rc = mdb_env_set_mapsize(env, mapSize) }
        if rc == 0 { rc = mdb_env_open(env, path, flags, 0o644) }
        if rc != 0 {
            mdb_env_close(env)
            try check(rc, path: path, "cannot open the datastore")
        }
        return env
    }

    var handle: OpaquePointer { env }

    /// Sets the map size (the most the data file may grow to); no transaction may be open.
    func setMapSize(_ bytes: Int) throws {
        try Self.check(mdb_env_set_mapsize(env, bytes), path: path, "cannot grow the map to \(bytes) bytes")
    }

    /// Flushes the data file to disk.
    func sync() throws {
        try Self.check(mdb_env_sync(env, 1), path: path, "cannot flush the datastore to disk")
    }

    deinit { mdb_env_close(env) }

    /// Throws a ``DatastoreError`` for a non-zero LMDB or errno return code.
    static func check(_ rc: Int32, path: String, _ what: String) throws {
        guard rc != 0 else { return }
        if rc > 0 { throw DatastoreError.system(what, path: path, errno: rc) }
        let text = String(cString: mdb_strerror(rc))
        switch rc {
        case MDB_MAP_FULL:
            throw DatastoreError(.diskFull, path: path, "\(what): \(text)", code: rc)
        case MDB_INVALID, MDB_VERSION_MISMATCH:
            throw DatastoreError(.notADatastore, path: path, "\(what): \(text)", code: rc)
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND:
            throw DatastoreError(.corrupt, path: path, "\(what): \(text)", code: rc)
        default:
            throw DatastoreError(.lmdb, path: path, "\(what): \(text)", code: rc)
        }
    }

    /// Bounds of the memory map, to validate every pointer LMDB hands back.
    func mapBounds() -> (base: UnsafeRawPointer?, size: Int) {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return (UnsafeRawPointer(info.me_mapaddr), Int(info.me_mapsize))
    }
}

/// A read-only transaction kept open for the lifetime of the values read through it.
final class LMDBReadTransaction: @unchecked Sendable {
    // @unchecked: opened with MDB_NOTLS and never used for writes; `get` only reads.
    let environment: LMDBEnvironment
    let txn: OpaquePointer
    let dbi: MDB_dbi
    private let mapBase: UInt
    private let mapEnd: UInt

    init(_ environment: LMDBEnvironment) throws {
        self.environment = environment
        var t: OpaquePointer?
        try LMDBEnvironment.check(
            mdb_txn_begin(environment.handle, nil, UInt32(MDB_RDONLY), &t), path: environment.path,
            "cannot begin a read transaction")
        guard let txn = t else { throw DatastoreError(.lmdb, path: environment.path, "no transaction handle") }
        self.txn = txn
        var d: MDB_dbi = 0
        let rc = mdb_dbi_open(txn, nil, 0, &d)
        if rc != 0 { mdb_txn_abort(txn) }
        try LMDBEnvironment.check(rc, path: environment.path, "cannot open the main database")
        self.dbi = d
        let bounds = environment.mapBounds()
        mapBase = UInt(bitPattern: bounds.base)
        mapEnd = mapBase &+ UInt(bounds.size)
    }

    deinit { mdb_txn_abort(txn) }

    /// The value stored under `key`, pointing into the map, or nil when absent.
    func get(_ key: String) throws -> UnsafeRawBufferPointer? {
        var k = Array(key.utf8)
        return try k.withUnsafeMutableBytes { kb -> UnsafeRawBufferPointer? in
            var mk = MDB_val(mv_size: kb.count, mv_data: kb.baseAddress)
            var mv = MDB_val()
            let rc = mdb_get(txn, dbi, &mk, &mv)
            if rc == MDB_NOTFOUND { return nil }
            try LMDBEnvironment.check(rc, path: environment.path, "cannot read \(key)")
            let start = UInt(bitPattern: mv.mv_data)
            // A damaged B-tree page could hand back a pointer outside the map; never follow it.
            guard mv.mv_size == 0 || (mapBase == 0 || (start >= mapBase && start &+ UInt(mv.mv_size) <= mapEnd)) else {
                throw DatastoreError(.corrupt, path: environment.path, "value \(key) lies outside the data file")
            }
            return UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size)
        }
    }

    /// Every key in the database, in order.
    func keys() throws -> [String] {
        var cursor: OpaquePointer?
        try LMDBEnvironment.check(mdb_cursor_open(txn, dbi, &cursor), path: environment.path, "cannot open a cursor")
        defer { mdb_cursor_close(cursor) }
        var out: [String] = []
        var k = MDB_val(), v = MDB_val()
        var op = MDB_FIRST
        while true {
            let rc = mdb_cursor_get(cursor, &k, &v, op)
            if rc == MDB_NOTFOUND { break }
            try LMDBEnvironment.check(rc, path: environment.path, "cannot list keys")
            out.append(String(decoding: UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size), as: UTF8.self))
            op = MDB_NEXT
        }
        return out
    }
}

/// A write transaction; values are reserved in the map and filled in place.
final class LMDBWriteTransaction {
    let environment: LMDBEnvironment
    private var txn: OpaquePointer?
    let dbi: MDB_dbi

    init(_ environment: LMDBEnvironment) throws {
        self.environment = environment
        var t: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(environment.handle, nil, 0, &t), path: environment.path, "cannot begin a write transaction")
        self.txn = t
        var d: MDB_dbi = 0
        let rc = mdb_dbi_open(t, nil, UInt32(MDB_CREATE), &d)
        if rc != 0 { mdb_txn_abort(t); txn = nil }
        try LMDBEnvironment.check(rc, path: environment.path, "cannot open the main database")
        self.dbi = d
    }

    deinit { if let t = txn { mdb_txn_abort(t) } }

    /// Reserves `count` bytes under `key` and lets `fill` write them in place.
    ///
    /// When `align64` is set, 48 leading pad bytes are stored first so that the payload of a
    /// large value (which LMDB puts on overflow pages, 16 bytes past a page boundary) starts on
    /// a 64-byte boundary: rank blocks then never straddle cache lines.
    func put(_ key: String, count: Int, align64: Bool = false, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let pad = align64 ? Layout.alignmentPad : 0
        var k = Array(key.utf8)
        try k.withUnsafeMutableBytes { kb in
            var mk = MDB_val(mv_size: kb.count, mv_data: kb.baseAddress)
            var mv = MDB_val(mv_size: count + pad, mv_data: nil)
            try LMDBEnvironment.check(mdb_put(txn, dbi, &mk, &mv, UInt32(MDB_RESERVE)), path: environment.path, "cannot store \(key)")
            guard let base = mv.mv_data else { throw DatastoreError(.lmdb, path: environment.path, "no space reserved for \(key)") }
            if pad > 0 { base.initializeMemory(as: UInt8.self, repeating: 0, count: pad) }
            try fill(UnsafeMutableRawBufferPointer(start: base + pad, count: count))
        }
    }

    /// Stores `bytes` under `key`.
    func put(_ key: String, bytes: some Collection<UInt8>) throws {
        let array = Array(bytes)
        try put(key, count: array.count) { dst in array.withUnsafeBytes { dst.copyMemory(from: $0) } }
    }

    /// Commits; after this the transaction is gone.
    func commit() throws {
        guard let t = txn else { return }
        txn = nil
        try LMDBEnvironment.check(mdb_txn_commit(t), path: environment.path, "cannot commit the datastore")
    }
}

/// Layout constants shared by the writer and the reader.
enum Layout {
    /// Pad bytes stored before a 64-byte-aligned payload (see ``LMDBWriteTransaction/put(_:count:align64:_:)``).
    static let alignmentPad = 48
}
