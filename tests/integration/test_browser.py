"""The browsable HTML view (issue 13), in a real browser.

Headless Chromium (Debian's `chromium`) loads each page: --dump-dom gives
the DOM after parsing, which html.parser reads here; links are followed by
loading their href in Chromium again. A phone-sized screenshot of each page
kind is kept in build/browser/ (the path is printed). Every page is also
checked by tidy (HTML5, errors and warnings), and no page may hold a script.
"""
import html.parser
import os
import shutil
import subprocess
import tempfile
import urllib.parse

import harness

q = urllib.parse.quote
OUT = os.path.join(harness.ROOT, "build", "browser")
# What Chromium 156 sends when it navigates to a page.
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
NASTY = "<script>alert(1)</script>\"&'"
PHONE = "412,915"


def chromium():
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed: tools/deps.sh test installs it"
    return exe


def browse(c, target, extra=(), timeout=90):
    """Runs headless Chromium on target (a path on lazykvd) with a fresh
    profile; returns its standard output."""
    url = "http://127.0.0.1:%d%s" % (c.http_port, target)
    with tempfile.TemporaryDirectory(prefix="lazykv-chromium-") as profile:
        cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
               "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"] + list(extra) + [url]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=profile)
    assert p.returncode == 0, (cmd, p.returncode, p.stderr.decode(errors="replace")[-3000:])
    return p.stdout


def dom(c, target):
    """The DOM Chromium built for target, parsed."""
    out = browse(c, target, ["--dump-dom"])
    d = Dom()
    d.feed(out.decode("utf-8"))
    d.close()
    assert d.starts and d.starts[0][0] == "html", out[:300]
    return d


def screenshot(c, target, name):
    os.makedirs(OUT, exist_ok=True)
    png = os.path.join(OUT, name + ".png")
    if os.path.exists(png):
        os.unlink(png)
    browse(c, target, ["--screenshot=" + png, "--window-size=" + PHONE,
                       "--hide-scrollbars"])
    with open(png, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", png
    assert int.from_bytes(head[16:20], "big") == 412, png
    print("browser: screenshot %s" % png, flush=True)
    return png


class Dom(html.parser.HTMLParser):
    """What the tests look at in a page: every start tag, the text, the
    links, the rows of table bodies, the <dl> fields, the forms."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.starts = []       # (tag, attrs)
        self.text = []
        self.links = []        # dicts: attrs + "text"
        self.rows = []         # lists of cell texts, <tbody> rows only
        self.fields = {}       # <dt> text -> <dd> text
        self.forms = []        # dicts: attrs + "inputs": [attrs]
        self.pre = []          # texts of <pre> elements
        self.marks = []
        self._open = []        # (tag, attrs, text parts) being collected
        self._in_tbody = False
        self._in_keys = False
        self._last_dt = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.starts.append((tag, a))
        if tag in ("a", "td", "th", "dt", "dd", "pre", "mark", "h1"):
            self._open.append((tag, a, []))
        if tag == "tbody":
            self._in_tbody = True
        elif tag == "ul" and a.get("class") == "keys":
            self._in_keys = True
        elif tag == "tr" and self._in_tbody:
            self.rows.append([])
        elif tag == "form":
            self.forms.append(dict(a, inputs=[]))
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(a)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_tbody = False
        elif tag == "ul":
            self._in_keys = False
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                _, a, parts = self._open.pop(i)
                self._closed(tag, a, "".join(parts))
                break

    def _closed(self, tag, a, text):
        if tag == "a":
            self.links.append(dict(a, text=text, in_keys=self._in_keys))
        elif tag in ("td", "th") and self._in_tbody and self.rows:
            self.rows[-1].append(text)
        elif tag == "dt":
            self._last_dt = text
        elif tag == "dd" and self._last_dt is not None:
            self.fields[self._last_dt] = text
        elif tag == "pre":
            self.pre.append(text)
        elif tag == "mark":
            self.marks.append(text)
        elif tag == "h1":
            self.h1 = text

    def handle_data(self, data):
        self.text.append(data)
        for _, _, parts in self._open:
            parts.append(data)

    def tags(self):
        return {t for t, _ in self.starts}

    def all_text(self):
        return "".join(self.text)

    def link(self, text):
        found = [l for l in self.links if l["text"] == text]
        assert len(found) == 1, (text, self.links)
        return found[0]

    def key_links(self):
        """The keys a list page links (the texts of the links in its
        <ul class="keys">), in order."""
        return [l["text"] for l in self.links if l["in_keys"]]


def put(c, key, value, ctype):
    if isinstance(key, str):
        key = key.encode()
    r = c.request("PUT", "/canonicalbucket/" + q(key, safe="/"), value, {"Content-Type": ctype})
    assert r.status in (200, 201), r
    return r


def tidy_clean(body):
    """tidy's HTML5 check (errors and warnings) of a page: nothing to say."""
    exe = shutil.which("tidy")
    assert exe, "tidy is not installed: tools/deps.sh test installs it"
    p = subprocess.run([exe, "-quiet", "-o", "/dev/null", "--show-info", "no"], input=body,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr.decode(errors="replace")


def html_get(c, target):
    r = c.request("GET", target, headers={"Accept": BROWSER_ACCEPT})
    assert r.header("Content-Type") == "text/html; charset=utf-8", r
    assert "script-src" not in (r.header("Content-Security-Policy") or "x")
    assert r.header("Content-Security-Policy").startswith("default-src 'none'"), r
    assert b"<script" not in r.body.lower(), r.body
    tidy_clean(r.body)
    return r


# ---- tests ------------------------------------------------------------------

def test_empty_list(c):
    d = dom(c, "/bucket/?prefix=browser/none/")
    assert "0 keys." in d.all_text() and d.key_links() == [] and len(d.forms) == 1
    html_get(c, "/bucket/?prefix=browser/none/")


def test_list_shows_a_script_key_as_text_and_links_it(c):
    key = "browser/x/" + NASTY
    put(c, key, NASTY.encode(), "text/plain")
    put(c, b"browser/x/bin\xff", b"v", "text/plain")
    listing = "/bucket/?prefix=" + q("browser/x/", safe="")
    d = dom(c, listing)
    assert "script" not in d.tags()
    assert NASTY in d.all_text()
    assert d.key_links() == [key, "browser/x/bin%FF"]
    assert d.marks == ["%FF"]
    a = d.link(key)
    assert a["href"] == "/bucket/" + q(key.encode(), safe="/"), a
    html_get(c, listing)
    screenshot(c, listing, "list")
    # follow the key's link: metadata and the value, as text
    k = dom(c, a["href"])
    assert "script" not in k.tags()
    assert k.h1 == key
    assert k.pre == [NASTY]
    direct = c.request("GET", a["href"] + "?raw=1")
    assert direct.body == NASTY.encode()
    f = k.fields
    assert int(f["Version (index)"]) == int(direct.header("X-Lazykv-Index")), f
    assert f["Content-Type"] == "text/plain" and f["Size"] == "%d bytes" % len(NASTY), f
    assert f["Expires"] == "never" and f["ETag"] == direct.header("ETag"), f
    assert int(f["Partition"].split()[0]) in range(c.n), f
    html_get(c, a["href"])
    screenshot(c, a["href"], "key")
    # up to the list of the key's "directory", across to the master's copy
    up = k.link("Keys under /bucket/browser/x/<script>alert(1)</")
    assert up["href"] == "/bucket/?prefix=" + q("browser/x/<script>alert(1)</", safe="/")
    master = html_get(c, k.link("Read it at its master")["href"])
    assert master.status == 200 and b"(the key&#39;s master)" in master.body


def test_key_page_says_which_partition_answered(c):
    key = "browser/meta/ttl"
    r = c.request("PUT", "/canonicalbucket/%s?ttl=3600" % key, b'{"a": 1}',
                  {"Content-Type": "application/json"})
    assert r.status == 201, r
    page = html_get(c, "/canonicalbucket/" + key)
    d = Dom()
    d.feed(page.body.decode())
    f = d.fields
    assert f["Partition"] == "%s (the key's master)" % page.header("X-Lazykv-Partition"), f
    assert f["Expires"] == page.header("X-Lazykv-Expires"), f
    assert f["Version (index)"] == page.header("X-Lazykv-Index"), f
    assert f["Last modified"] == page.header("Last-Modified"), f
    assert d.pre == ['{"a": 1}']


def test_next_page_link(c):
    keys = ["browser/page/%d" % i for i in range(3)]
    for k in keys:
        put(c, k, b"v", "text/plain")
    first = dom(c, "/canonicalbucket/?prefix=browser/page/&limit=2")
    assert first.key_links() == keys[:2]
    nxt = [l for l in first.links if l.get("rel") == "next"]
    assert len(nxt) == 1, first.links
    second = dom(c, nxt[0]["href"])
    assert second.key_links() == keys[2:]
    assert not [l for l in second.links if l.get("rel") == "next"]
    assert "First page" in [l["text"] for l in second.links]
    html_get(c, nxt[0]["href"])
    # values=1: each key with its size, type and version; links keep it
    r = html_get(c, "/canonicalbucket/?prefix=browser/page/&limit=2&values=1")
    d = Dom()
    d.feed(r.body.decode())
    assert d.key_links() == keys[:2]
    assert r.body.count(b"<small>1 byte, text/plain, version ") == 2, r.body
    assert [l["href"] for l in d.links if l.get("rel") == "next"] == [
        "/canonicalbucket/?prefix=browser/page/&start_after=browser/page/1&limit=2&values=1"]


def test_prefix_form(c):
    for k in ("browser/form/a b", "browser/form/c", "browser/formx"):
        put(c, k, b"v", "text/plain")
    d = dom(c, "/bucket/?limit=50")
    assert len(d.forms) == 1, d.forms
    form = d.forms[0]
    assert form["method"] == "get" and form["action"] == "/bucket/", form
    # submit it as a browser does (application/x-www-form-urlencoded)
    fields = []
    for i in form["inputs"]:
        value = "browser/form/" if i["name"] == "prefix" else i.get("value", "")
        fields.append((i["name"], value))
    assert [n for n, _ in fields] == ["prefix", "limit"], fields
    target = form["action"] + "?" + urllib.parse.urlencode(fields)
    got = dom(c, target)
    assert got.key_links() == ["browser/form/a b", "browser/form/c"], target
    prefix = [i for i in got.forms[0]["inputs"] if i["name"] == "prefix"][0]
    assert prefix["value"] == "browser/form/"


def test_binary_value_is_a_download_link(c):
    value = bytes(range(256)) * 4
    put(c, "browser/bin/blob.png", value, "image/png")
    d = dom(c, "/bucket/browser/bin/blob.png")
    assert d.pre == [] and "Not shown: not text." in d.all_text()
    a = d.link("Download the value")
    assert a["download"] == "blob.png" and a["href"].endswith("?raw=1"), a
    # what the link fetches, with the Accept a browser navigates with
    r = c.request("GET", a["href"], headers={"Accept": BROWSER_ACCEPT})
    assert r.status == 200 and r.body == value, r
    assert r.header("Content-Type") == "image/png"
    # the API is unchanged for other clients: JSON when asked, raw by default
    j = c.request("GET", "/bucket/browser/bin/blob.png", headers={"Accept": "application/json"})
    assert j.header("Content-Type") == "application/json" and j.json()["encoding"] == "base64"
    assert c.request("GET", "/bucket/browser/bin/blob.png").body == value
    h = c.request("HEAD", a["href"], headers={"Accept": "application/json"})
    assert h.status == 200 and h.header("Content-Length") == str(len(value)), h
    html_get(c, "/bucket/browser/bin/blob.png")
    screenshot(c, "/bucket/browser/bin/blob.png", "binary")


def test_health_table(c):
    doc = c.request("GET", "/health").json()
    d = dom(c, "/health")
    # the probers reread backlogs every 5 s: the page shows the one before
    # or the one after it was loaded
    later = c.request("GET", "/health").json()
    assert "table" in d.tags()
    assert len(d.rows) == c.n == len(doc["partition"]), d.rows
    heads = [l for t, l in d.starts if t == "th"]
    assert len(heads) == len(doc["partition"][0]), heads
    for row, part, part2 in zip(d.rows, doc["partition"], later["partition"]):
        assert row[0] == str(part["index"]) and row[1] == part["database"], (row, part)
        assert ("yes" if part["reachable"] else "no") in row, row
        if "pending_rows" in part:
            assert str(part["pending_rows"]) in row or str(part2["pending_rows"]) in row, row
    assert d.fields["Status"] == doc["status"], d.fields
    if "sync" in doc:
        assert "Sync: the last pass" in d.all_text()
    html_get(c, "/health")
    screenshot(c, "/health", "health")


def test_error_pages_are_html_too(c):
    r = c.request("GET", "/bucket/browser/none", headers={"Accept": BROWSER_ACCEPT})
    assert r.status == 404 and r.header("Content-Type") == "text/html; charset=utf-8", r
    assert r.header("Content-Security-Policy"), r
    tidy_clean(r.body)
    assert b"no such key" in r.body
