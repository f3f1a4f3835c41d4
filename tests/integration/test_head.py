"""HEAD answers what GET would, from one read (issue 8, defect 4).

A lazy read goes to any partition, and partitions may hold different
versions of a key. A HEAD that judged its preconditions on one copy and took
its ETag and length from another would contradict every GET. Here each
partition holds its own version of a key (written in SQL, as the sync tests
do), and for every Accept and precondition a HEAD answered by partition P
must agree with a GET answered by P on status, ETag and Content-Length.
"""
import http.client

KEY = "head/divergent"
# partition -> (value, content type): lengths and types differ, so the
# representation (raw or document) and its length differ by partition.
COPIES = {0: (b"zero", "text/plain"), 1: (b'{"one": 1}', "application/json"),
          2: (b"\x89PNG two two", "image/png")}
ACCEPTS = [None, "*/*", "application/json", "application/xml", "text/html", "text/plain",
           "image/png", "text/*;q=0.5, application/json;q=0.4", "*/*;q=0.9, text/*;q=0.1"]


def etag(version):
    return '"%016x"' % version


def plant(c, base):
    for p, (value, ctype) in COPIES.items():
        c.sql(p, "INSERT INTO data (k, v, ctype, version, deleted, seq) VALUES "
                 "('%s', UNHEX('%s'), '%s', %d, 0, 0) ON DUPLICATE KEY UPDATE v = VALUES(v), "
                 "ctype = VALUES(ctype), version = VALUES(version), deleted = 0, seq = 0"
              % (KEY, value.hex(), ctype, base + p))


def preconditions(base):
    out = [{}, {"If-None-Match": "*"}, {"If-Match": "*"}]
    for p in COPIES:
        out.append({"If-Match": etag(base + p)})
        out.append({"If-None-Match": etag(base + p)})
    return out


def ask(conn, method, path, headers):
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    assert method == "HEAD" or int(r.getheader("Content-Length")) == len(body)
    part = r.getheader("X-Lazykv-Partition")
    assert part is not None, (method, path, headers, r.status, r.getheaders())
    return int(part), (r.status, r.getheader("ETag"), r.getheader("Content-Length"))


def check_path(c, path, base, tries):
    conn = http.client.HTTPConnection("127.0.0.1", c.http_port, timeout=30)
    try:
        for accept in ACCEPTS:
            for pre in preconditions(base):
                headers = dict(pre, **({"Accept": accept} if accept else {}))
                get = {}
                for _ in range(tries):
                    p, answer = ask(conn, "GET", path, headers)
                    assert get.setdefault(p, answer) == answer, (p, headers, get[p], answer)
                heads = set()
                for _ in range(tries):
                    p, answer = ask(conn, "HEAD", path, headers)
                    if p in get:
                        assert answer == get[p], ("HEAD and GET from partition %d disagree"
                                                  % p, headers, answer, get[p])
                        heads.add(p)
                assert heads, headers
    finally:
        conn.close()


def test_head_and_get_agree_on_divergent_partitions(c):
    base = 1 << 52
    plant(c, base)
    for p, (value, _) in COPIES.items():
        assert c.row(p, KEY) == (value, base + p, 0)
    try:
        # lazy: any partition answers; canonical: the master, always
        check_path(c, "/bucket/" + KEY, base, 24)
        check_path(c, "/canonicalbucket/" + KEY, base, 2)
    finally:
        # the cluster is shared: leave no divergence for the sync tests
        for p in COPIES:
            c.sql(p, "DELETE FROM data WHERE k = '%s'" % KEY)
