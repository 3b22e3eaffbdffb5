"""Downloads against a local HTTP server on 127.0.0.1: success, a transfer cut off halfway, a wrong
MD5, a missing file, no server at all, mirrors, and the data-folder settings."""
import hashlib
import http.server
import socket
import threading
import warnings

import numpy as np
import pytest

from minigan.data import DatasetError, DatasetWarning, default_root, load_dataset
from minigan.data import download as dl

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}

    def do_GET(self):
        if self.path.startswith('/cut/'):                       # promises everything, sends half
            body = self.files.get(self.path[4:], PAYLOAD)
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server():
    _Handler.files = {'/good.bin': PAYLOAD}
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_checks_md5_and_renames(server, tmp_path):
    dest = tmp_path / 'sub' / 'good.bin'
    assert dl.download(server + '/good.bin', dest, MD5, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ['good.bin']                     # no .part file left


def test_transfer_cut_off_halfway_leaves_nothing(server, tmp_path):
    dest = tmp_path / 'good.bin'
    with pytest.raises(DatasetError, match='stopped after 150,000 of 300,000 bytes'):
        dl.download(server + '/cut/good.bin', dest, MD5, progress=False)
    assert _leftovers(tmp_path) == []


def test_wrong_md5_leaves_nothing(server, tmp_path):
    dest = tmp_path / 'good.bin'
    with pytest.raises(DatasetError, match='does not match the official'):
        dl.download(server + '/good.bin', dest, '0' * 32, progress=False)
    assert _leftovers(tmp_path) == []


def test_mirrors_are_tried_in_turn(server, tmp_path):
    dest = tmp_path / 'good.bin'
    dl.download([server + '/missing.bin', server + '/good.bin'], dest, MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_no_network_names_url_file_and_place(tmp_path):
    with socket.socket() as s:                                         # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/train_32x32.mat'
    dest = tmp_path / 'svhn' / 'train_32x32.mat'
    with pytest.raises(DatasetError) as e:
        dl.download(url, dest, MD5, progress=False, timeout=5)
    msg = str(e.value)
    assert url in msg and 'train_32x32.mat' in msg and str(dest) in msg and 'by hand' in msg
    assert _leftovers(dest.parent) == []


def test_an_existing_file_is_never_overwritten(server, tmp_path):
    dest = tmp_path / 'good.bin'
    dest.write_bytes(b'mine')
    dl.download(server + '/good.bin', dest, MD5, progress=False)
    assert dest.read_bytes() == b'mine'


def test_load_dataset_downloads_svhn(server, tmp_path, monkeypatch):
    import io

    import scipy.io
    from minigan.data import svhn
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {'X': rng.integers(0, 256, (32, 32, 3, 12), dtype=np.uint8),
                           'y': rng.integers(1, 11, (12, 1)).astype(np.uint8)})
    blob = buf.getvalue()
    _Handler.files['/hn/test_32x32.mat'] = blob
    monkeypatch.setattr(svhn, 'URL', server + '/hn/')
    monkeypatch.setitem(svhn.FILES, 'test', ('test_32x32.mat', hashlib.md5(blob).hexdigest()))
    with pytest.raises(DatasetError, match='download=True'):
        load_dataset('svhn', root=tmp_path, split='test')
    with warnings.catch_warnings():
        warnings.simplefilter('error', DatasetWarning)                   # a verified download: no warning
        ds = load_dataset('svhn', root=tmp_path, split='test', download=True)
    assert len(ds) == 12 and (tmp_path / 'svhn' / 'test_32x32.mat').read_bytes() == blob
    monkeypatch.setitem(svhn.FILES, 'extra', ('extra_32x32.mat', '0' * 32))
    _Handler.files['/hn/extra_32x32.mat'] = blob
    with pytest.raises(DatasetError, match='MD5'):
        load_dataset('svhn', root=tmp_path, split='extra', download=True)
    assert not (tmp_path / 'svhn' / 'extra_32x32.mat').exists()


def test_data_folder_from_argument_env_or_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('MINIGAN_DATA', str(tmp_path / 'env'))
    assert default_root() == tmp_path / 'env'
    assert dl.resolve_root(tmp_path / 'arg') == tmp_path / 'arg'
    load_dataset('synth', split='test', n=20)                           # lands under $MINIGAN_DATA
    assert list((tmp_path / 'env' / 'cache').glob('synth-*.npz'))
    monkeypatch.delenv('MINIGAN_DATA')
    assert default_root().name == 'minigan'
