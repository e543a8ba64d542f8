// A host storage written from the contract alone (not from the engine's memory store), answering
// synchronously or with Promises, with failures injectable per method.

// The contract's bound on the entries a stale append hands back.
const STALE_TAIL = 500;

export function hostStorage({ async = false } = {}) {
  const collections = new Map(); // name → Map(id → record)
  const streams = new Map(); // stream → entries
  const claimed = new Map(); // stream → Map(key → position)
  // method → "throw" | "reject" | "garbage" | "hostile" | "hostile-reject" | "proxy" | "revoked"
  const failures = new Map();
  // An Error whose name and message throw when read.
  const hostile = (method) => {
    const error = new Error(`${method} hostile`);
    for (const key of ["name", "message"]) {
      Object.defineProperty(error, key, { get() { throw new Error(`${key} getter of ${method}`); } });
    }
    return error;
  };
  const answer = (method, value) => {
    const failure = failures.get(method);
    if (failure === "throw") throw new Error(`${method} exploded`);
    if (failure === "reject") return Promise.reject(new Error(`${method} rejected`));
    if (failure === "hostile") throw hostile(method);
    if (failure === "hostile-reject") return Promise.reject(hostile(method));
    // An array whose every trap throws, and a revoked Proxy (reading it at all throws).
    if (failure === "proxy") {
      const trap = () => { throw new Error(`${method} trap`); };
      return new Proxy([], { get: trap, getPrototypeOf: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap });
    }
    // A native Promise whose own `then` throws, and one whose `constructor` getter throws.
    if (failure === "then-throws") {
      const promise = Promise.resolve(value);
      Object.defineProperty(promise, "then", { value() { throw new Error(`${method} then`); } });
      return promise;
    }
    if (failure === "constructor-throws") {
      const promise = Promise.resolve(value);
      Object.defineProperty(promise, "constructor", { get() { throw new Error(`${method} constructor`); } });
      return promise;
    }
    if (failure === "revoked") {
      const { proxy, revoke } = Proxy.revocable([], {});
      revoke();
      return proxy;
    }
    // -1 is no method's answer: not even findClaim's, whose positions are 0 or more.
    if (failure === "garbage") return async ? Promise.resolve({ nonsense: true }) : -1;
    return async ? Promise.resolve(value) : value;
  };
  const collection = (name) => {
    if (!collections.has(name)) collections.set(name, new Map());
    return collections.get(name);
  };
  const copy = (record) => ({ ...record, indexes: { ...record.indexes } });
  return {
    failNext(method, failure) {
      if (failure) failures.set(method, failure);
      else failures.delete(method);
    },
    dump(name) {
      return [...collection(name).values()].map(copy);
    },
    get(name, id) {
      const found = collection(name).get(id);
      return answer("get", found ? copy(found) : null);
    },
    find(name, query) {
      let records = [...collection(name).values()];
      if (query.index !== undefined) records = records.filter((r) => r.indexes[query.index] === query.value);
      if (query.after !== undefined) records = records.filter((r) => r.id > query.after);
      records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return answer("find", records.slice(0, query.limit).map(copy));
    },
    put(name, record, expectedVersion, unique) {
      const failure = failures.get("put");
      if (failure) return answer("put", undefined);
      const records = collection(name);
      const current = records.get(record.id);
      if ((current ? current.version : 0) !== expectedVersion) return answer("put", "stale");
      for (const index of unique) {
        for (const other of records.values()) {
          if (other.id !== record.id && other.indexes[index] === record.indexes[index]) return answer("put", { duplicate: index });
        }
      }
      records.set(record.id, copy(record));
      return answer("put", "written");
    },
    // An injected failure of a write is answered after the write, as when its acknowledgment is lost.
    append(stream, expectedLength, entries, claims, guard) {
      const log = streams.get(stream) ?? [];
      if (log.length !== expectedLength) return answer("append", { stale: log.slice(expectedLength, expectedLength + STALE_TAIL) });
      if (guard && collection(guard.collection).get(guard.id)?.version !== guard.version) return answer("append", "changed");
      const held = claimed.get(stream) ?? new Map();
      const given = new Set();
      for (const { key } of claims) {
        if (held.has(key) || given.has(key)) return answer("append", { claimed: key });
        given.add(key);
      }
      streams.set(stream, [...log, ...entries]);
      claimed.set(stream, new Map([...held, ...claims.map(({ key, position }) => [key, position])]));
      return answer("append", "written");
    },
    findClaim(stream, key) {
      return answer("findClaim", claimed.get(stream)?.get(key) ?? null);
    },
    read(stream, from, limit) {
      return answer("read", (streams.get(stream) ?? []).slice(from, from + limit));
    },
  };
}
