"""The reference for bench_api.py: a bare FastAPI endpoint returning a constant, served the same way."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/constant")
def constant() -> dict[str, bool]:
    return {"ok": True}
