"""A service searching fmsearch over HTTP: plain httpx, no fmsearch import.

    python examples/search_client.py shoe.png --url http://127.0.0.1:8000 --method distilled -k 5 --class Sneaker

tests/test_serve.py runs `search_by_image` against a real `fmsearch serve`.
"""

import argparse
import os

import httpx


def search_by_image(url, path, method="distilled", k=5, classes=(), api_key=None):
    """The k gallery images most like the image file at `path`, as dicts."""
    headers = {"X-API-Key": api_key} if api_key else {}
    with open(path, "rb") as image:
        answer = httpx.post(
            f"{url}/api/search",
            headers=headers,
            timeout=30,
            files={"image": (os.path.basename(path), image)},
            data={"method": method, "k": str(k), "class": list(classes)},
        )
    if answer.status_code != 200:  # every error is {"error": "<one line>"}
        raise SystemExit(f"{answer.status_code}: {answer.json()['error']}")
    return answer.json()["hits"]


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("image")
    args.add_argument("--url", default="http://127.0.0.1:8000")
    args.add_argument("--method", default="distilled")
    args.add_argument("-k", type=int, default=5)
    args.add_argument("--class", dest="classes", action="append", default=[])
    a = args.parse_args()
    for hit in search_by_image(a.url, a.image, a.method, a.k, a.classes, os.environ.get("FMSEARCH_API_KEY")):
        print(
            f"{hit['rank']:>3}  {hit['id']:>6}  {hit['score']:.4f}  {hit['class_name']:<12}  {a.url}{hit['image_url']}"
        )
