# The server's /acme-status and `acmectl status --json` on one store with a
# domain in every state: both render the one status function, so they agree.
import datetime
import json
import os
import subprocess
import types

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.util import free_port

DAY = datetime.timedelta(days=1)
FAR = 4102444800  # 2100-01-01: the scheduler leaves these domains alone until then


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def put_cert(store, name, start, end):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(key, hashes.SHA256()))
    d = os.path.join(store, "domains", name)
    write(os.path.join(d, "cert.p256.pem"), cert.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(d, "privkey.p256.pem"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(os.path.join(d, "privkey.p256.pem"), 0o600)
    write(os.path.join(d, "meta.json"), json.dumps({"names": [name]}))


def put_job(store, name, job):
    write(os.path.join(store, "jobs", name, "job.json"), json.dumps(job))


def test_server_and_acmectl_agree_on_every_state(httpd, build_dir, listener_pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    store = httpd.store_dir
    write(os.path.join(store, "store.json"), '{"schema": 1}\n')
    # a 90-day certificate renews 1/3 before its end and is expiring in its last tenth
    expect = {
        "ok.agree.test": (now - DAY, now + 89 * DAY, {}),
        "due.agree.test": (now - 65 * DAY, now + 25 * DAY, {"next-attempt": FAR}),
        "expiring.agree.test": (now - 85 * DAY, now + 5 * DAY, {"next-attempt": FAR}),
        "error.agree.test": (now - DAY, now + 89 * DAY, {
            "errors": 2, "next-attempt": FAR, "last-error": {
                "status": 1, "problem": "urn:ietf:params:acme:error:rateLimited",
                "detail": "slow down"}}),
        "renewing.agree.test": (now - DAY, now + 89 * DAY, {
            "orders": {"p256": "https://127.0.0.1:1/order/1"}}),
        "pending.agree.test": (None, None, {"next-attempt": FAR}),
    }
    for name, (start, end, job) in expect.items():
        if start:
            put_cert(store, name, start, end)
        put_job(store, name, job)
    # a CA nobody answers at: nothing in the store changes meanwhile
    ca = types.SimpleNamespace(dir_url="https://127.0.0.1:%d/dir" % free_port(),
                               ca_file=listener_pki.ca_file)
    text = httpd.acme_config(ca) + "ManagedARI off\nManagedCheckInterval 1d\n"
    for name in expect:
        text += "ManagedDomain %s\n" % name + httpd.vhost(name, tls=True)
    text += "<Location /acme-status>\n    SetHandler acme-status\n</Location>\n"
    httpd.write_config(text)
    httpd.start()

    r = httpd.http_get("/acme-status", "localhost")
    assert r.status == 200, r
    server = {d["name"]: d["state"] for d in json.loads(r.body)["domains"]}
    out = subprocess.run([os.path.join(build_dir, "tools", "acmectl"), "-f", httpd.conf_file,
                          "status", "--json"], stdout=subprocess.PIPE, check=True, timeout=60)
    ctl = {d["domain"]: d["state"] for d in json.loads(out.stdout)["domains"]}
    assert server == ctl
    assert server == {name: name.split(".")[0] for name in expect}
