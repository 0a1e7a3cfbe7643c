"""A fake of Google Cloud Storage's XML API, for Weir's `gs://` tests.

No emulator in the registries Weir installs from serves the XML API that
`object_store`'s GCS client speaks (see emulators.rs), so this one is
written from Google's reference pages
(https://cloud.google.com/storage/docs/xml-api/overview): single-request
upload (PUT, with `x-goog-if-generation-match`), download and HEAD (with
`Range`), DELETE, bucket listing V2 (`list-type=2`: prefix, delimiter,
start-after, max-keys, continuation tokens), and multipart uploads (POST
`?uploads`, PUT `?partNumber&uploadId`, POST `?uploadId`, DELETE
`?uploadId`). It keeps objects in memory, ignores credentials, and lists at
most `--page-size` keys per page (GCS: 1000) so that tests reach the
continuation path.

Usage: python3 fake_gcs.py --port PORT --bucket NAME [--bucket NAME...]
"""

import argparse
import email.utils
import hashlib
import itertools
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


class Store:
    """Buckets of objects: name -> (bytes, generation, etag, mtime)."""

    def __init__(self, buckets, page_size):
        self.lock = threading.Lock()
        self.buckets = {name: {} for name in buckets}
        self.uploads = {}  # upload id -> (bucket, key, {part number: bytes})
        self.generations = itertools.count(1)
        self.upload_ids = itertools.count(1)
        self.page_size = page_size

    def put(self, bucket, key, data):
        generation = next(self.generations)
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        self.buckets[bucket][key] = (data, generation, etag, time.time())
        return generation, etag


def error_xml(code, message):
    return (
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
        "<Message>%s</Message></Error>" % (code, escape(message))
    ).encode()


def iso8601(seconds):
    millis = int(seconds * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % millis


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None  # set by main

    def log_message(self, *args):
        pass

    # --- plumbing -----------------------------------------------------------

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def reply(self, status, body=b"", headers=(), send_body=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def fail(self, status, code, message):
        self.reply(status, error_xml(code, message), [("Content-Type", "application/xml")])

    def target(self):
        """(bucket, key or None, query) of the request."""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = url.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        return bucket, key, query

    def bucket_or_fail(self, bucket):
        objects = self.store.buckets.get(bucket)
        if objects is None:
            self.fail(404, "NoSuchBucket", "The specified bucket does not exist.")
        return objects

    # --- methods ------------------------------------------------------------

    def do_GET(self, head=False):
        bucket, key, query = self.target()
        with self.store.lock:
            objects = self.bucket_or_fail(bucket)
            if objects is None:
                return
            if key is None:
                return self.list(objects, query)
            found = objects.get(key)
        if found is None:
            return self.fail(404, "NoSuchKey", "The specified key does not exist.")
        data, generation, etag, mtime = found
        headers = [
            ("ETag", etag),
            ("Last-Modified", email.utils.formatdate(mtime, usegmt=True)),
            ("x-goog-generation", str(generation)),
            ("Content-Type", "application/octet-stream"),
        ]
        status, data = self.ranged(data, headers)
        if status is not None:
            self.reply(status, data, headers, send_body=not head)

    def ranged(self, data, headers):
        """Applies a `Range: bytes=...` header: (status, bytes), or
        (None, None) after replying 416."""
        spec = self.headers.get("Range")
        if not spec:
            return 200, data
        first, _, last = spec.removeprefix("bytes=").partition("-")
        size = len(data)
        if first == "":
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            self.fail(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None, None
        headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        return 206, data[start : end + 1]

    def do_HEAD(self):
        self.do_GET(head=True)

    def list(self, objects, query):
        if query.get("list-type") != "2":
            return self.fail(400, "InvalidArgument", "Only list-type=2 is faked.")
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter")
        after = query.get("continuation-token") or query.get("start-after") or ""
        limit = max(1, min(int(query.get("max-keys", 1000)), self.store.page_size))
        entries, prefixes, token, previous = [], [], None, None
        for key in sorted(objects):
            if not key.startswith(prefix) or key <= after:
                continue
            if len(entries) + len(prefixes) == limit:
                token = previous
                break
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: key.index(delimiter, len(prefix)) + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                prefixes.append(common)
                # Skip the rest of this common prefix.
                previous = common + "\U0010ffff"
                after = previous
                continue
            entries.append(key)
            previous = key
        out = ["<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>"]
        for key in entries:
            data, _, etag, mtime = objects[key]
            out.append(
                "<Contents><Key>%s</Key><Size>%d</Size><LastModified>%s</LastModified>"
                "<ETag>%s</ETag></Contents>" % (escape(key), len(data), iso8601(mtime), escape(etag))
            )
        for common in prefixes:
            out.append("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % escape(common))
        out.append("<IsTruncated>%s</IsTruncated>" % ("true" if token else "false"))
        if token:
            out.append("<NextContinuationToken>%s</NextContinuationToken>" % escape(token))
        out.append("</ListBucketResult>")
        self.reply(200, "".join(out).encode(), [("Content-Type", "application/xml")])

    def do_PUT(self):
        bucket, key, query = self.target()
        data = self.body()
        with self.store.lock:
            objects = self.bucket_or_fail(bucket)
            if objects is None:
                return
            if key is None:
                return self.fail(400, "InvalidArgument", "An object name is required.")
            if "uploadId" in query:
                return self.put_part(query, data)
            match = self.headers.get("x-goog-if-generation-match")
            if match is not None:
                current = objects.get(key)
                current_generation = current[1] if current else 0
                if int(match) != current_generation:
                    return self.fail(412, "PreconditionFailed", "Generation does not match.")
            generation, etag = self.store.put(bucket, key, data)
        self.reply(200, b"", [("ETag", etag), ("x-goog-generation", str(generation))])

    def put_part(self, query, data):
        upload = self.store.uploads.get(query["uploadId"])
        if upload is None:
            return self.fail(404, "NoSuchUpload", "The upload does not exist.")
        upload[2][int(query["partNumber"])] = data
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        self.reply(200, b"", [("ETag", etag)])

    def do_POST(self):
        bucket, key, query = self.target()
        data = self.body()
        with self.store.lock:
            if self.bucket_or_fail(bucket) is None:
                return
            if key is None:
                return self.fail(400, "InvalidArgument", "An object name is required.")
            if "uploads" in query:
                upload_id = "upload-%d" % next(self.store.upload_ids)
                self.store.uploads[upload_id] = (bucket, key, {})
                body = (
                    "<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
                    "<Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId>"
                    "</InitiateMultipartUploadResult>" % (escape(bucket), escape(key), upload_id)
                )
                return self.reply(200, body.encode(), [("Content-Type", "application/xml")])
            if "uploadId" in query:
                return self.complete(query["uploadId"], data)
        self.fail(400, "InvalidArgument", "Unsupported POST.")

    def complete(self, upload_id, data):
        upload = self.store.uploads.get(upload_id)
        if upload is None:
            return self.fail(404, "NoSuchUpload", "The upload does not exist.")
        bucket, key, parts = upload
        try:
            numbers = [int(p.findtext("PartNumber")) for p in ET.fromstring(data).iter("Part")]
        except (ET.ParseError, TypeError, ValueError):
            return self.fail(400, "MalformedXML", "Bad CompleteMultipartUpload body.")
        if not numbers or any(n not in parts for n in numbers) or numbers != sorted(numbers):
            return self.fail(400, "InvalidPart", "Parts are missing or out of order.")
        del self.store.uploads[upload_id]
        generation, etag = self.store.put(bucket, key, b"".join(parts[n] for n in numbers))
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
            "<Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag>"
            "</CompleteMultipartUploadResult>" % (escape(bucket), escape(key), escape(etag))
        )
        headers = [("Content-Type", "application/xml"), ("x-goog-generation", str(generation))]
        self.reply(200, body.encode(), headers)

    def do_DELETE(self):
        bucket, key, query = self.target()
        self.body()
        with self.store.lock:
            objects = self.bucket_or_fail(bucket)
            if objects is None:
                return
            if "uploadId" in query:
                self.store.uploads.pop(query["uploadId"], None)
                return self.reply(204)
            if key is None or objects.pop(key, None) is None:
                return self.fail(404, "NoSuchKey", "The specified key does not exist.")
        self.reply(204)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    Handler.store = Store(args.bucket, args.page_size)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
