"""The README's screenshot of the page: `make screenshot` (a real `fmsearch
serve` on the home, Debian's Chromium driven by Playwright).

    python tests/screenshot.py [--home .fmsearch] [--out docs/img/page.png]

It times an upload (test image 0 as a 280x280 PNG, from choosing the file
to the results on the page), then searches test image 548, a Shirt (the hardest class), chosen among the
first 60 test Shirts as the one where the methods differ most (precision@10:
pixels 0.0, autoencoder 0.4, siamese 0.9 on the 60,000-image gallery), opens
the methods side by side, and writes a full-page PNG. Then it searches a train
Shirt (on the map) and writes the page's gallery section (the map with the
query and its results marked, and the duplicates) to --gallery-out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image
from serving import Server

from fmsearch.images.fmnist import load_split

QUERY = 60548  # test image 548, a Shirt
GALLERY_QUERY = 18  # train image 18, a Shirt: on the siamese map of the train gallery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".fmsearch", help="the store, with the methods ingested")
    parser.add_argument("--out", default="docs/img/page.png", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--insight", default="eval-results", help="where fmsearch map and duplicates wrote")
    parser.add_argument("--gallery-out", default="docs/img/page_gallery.png", type=Path)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    server = Server(Path(args.home), "--insight", args.insight)
    try:
        server.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{server.url}/")
            page.wait_for_selector("#status:has-text('Serving')")
            upload = Path(args.out).with_name(".upload.png")
            Image.fromarray(load_split("test").images[0]).resize((280, 280)).save(upload)
            t0 = time.perf_counter()
            page.set_input_files("#file", str(upload))  # choosing a file searches: no click
            page.wait_for_selector("#grid li")
            print(f"an upload's results on the page {time.perf_counter() - t0:.2f} s after the file was chosen")
            upload.unlink()
            page.goto(f"{server.url}/?id={QUERY}&method=siamese&k=10")
            page.wait_for_selector("#grid li")
            page.click("#compare-methods")
            page.wait_for_selector(".method-row")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            page.goto(f"{server.url}/?id={GALLERY_QUERY}&method=siamese&k=10")
            page.wait_for_selector(f"#map[data-marked^='{GALLERY_QUERY},']")
            page.wait_for_selector("#dup-rows li")
            page.locator("#insight").screenshot(path=str(args.gallery_out))
            browser.close()
    finally:
        code, log = server.stop()
    if code != 0:
        print(log[-2000:], file=sys.stderr)
        return 1
    print(f"wrote {args.out} and {args.gallery_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
