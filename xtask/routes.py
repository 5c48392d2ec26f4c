#!/usr/bin/env python3
"""Open WebUI's HTTP route table, read from its wheel with `ast` (nothing is imported or run).

    python3 routes.py open_webui-VERSION-py3-none-any.whl > routes.json

Reads `open_webui/main.py` (the `@app.<method>(...)` routes, `app.include_router(<module>.router,
prefix=...)` and `app.mount(...)`) and every router module under `open_webui/routers/`
(`@router.<method>(...)`, `@router.api_route(..., methods=[...])`, `@router.websocket(...)`, and
routers nested with `router.include_router(...)`). Writes one JSON object:

    {"routes": [{"method", "path", "handler"}...], "prefixes": [...], "mounts": [...]}

`path` is the full path as FastAPI declares it (`{param}` and `{param:path}` kept), `handler` is
`<module>.<function>`; `method` is `WEBSOCKET` for websocket routes. Routes are sorted by path,
then method, so the output only changes when Open WebUI's routes do. Anything the script cannot
read statically (a path that is not a string literal) stops it with an error naming the spot.
"""
import ast
import json
import sys
import zipfile

HTTP_METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}


class Unreadable(Exception):
    pass


def literal(node, where):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise Unreadable(f"{where}: not a string literal: {ast.dump(node)[:120]}")


def keyword(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def decorator_routes(tree, owner, module):
    """(method, path, handler) for every `@<owner>.<method>(path)` decorator in `tree`."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
                continue
            target = dec.func.value
            if not (isinstance(target, ast.Name) and target.id == owner):
                continue
            kind = dec.func.attr
            where = f"{module}:{dec.lineno}"
            if kind in HTTP_METHODS:
                methods = [kind.upper()]
            elif kind == "websocket":
                methods = ["WEBSOCKET"]
            elif kind == "api_route":
                m = keyword(dec, "methods")
                if isinstance(m, (ast.List, ast.Tuple)):
                    methods = [literal(e, where).upper() for e in m.elts]
                elif isinstance(m, ast.Name):
                    methods = module_constant_list(tree, m.id, where)
                else:
                    raise Unreadable(f"{where}: api_route without readable methods")
            else:
                continue
            path = literal(dec.args[0] if dec.args else keyword(dec, "path"), where)
            for method in methods:
                out.append((method, path, f"{module}.{fn.name}"))
    return out


def module_constant_list(tree, name, where):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            if isinstance(node.value, (ast.List, ast.Tuple, ast.Set)):
                return sorted(literal(e, where).upper() for e in node.value.elts)
    raise Unreadable(f"{where}: methods={name} is not a module-level literal list")


def include_calls(tree, owner):
    """(router module alias, prefix) for every `<owner>.include_router(<alias>.router, prefix=)`."""
    out = []
    for call in ast.walk(tree):
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "include_router"
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == owner
        ):
            continue
        arg = call.args[0]
        if not (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name)):
            raise Unreadable(f"include_router at line {call.lineno}: unreadable router")
        p = keyword(call, "prefix")
        out.append((arg.value.id, literal(p, f"line {call.lineno}") if p else ""))
    return out


def imported_modules(tree, package):
    """alias -> module path for `from <pkg> import x` and `from . import x` in a module."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            for a in node.names:
                out[a.asname or a.name] = f"{base}.{a.name}"
    return out


class Wheel:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path)
        self.names = set(self.zip.namelist())

    def module_file(self, dotted):
        base = dotted.replace(".", "/")
        for cand in (base + ".py", base + "/__init__.py"):
            if cand in self.names:
                return cand
        return None

    def parse(self, name):
        return ast.parse(self.zip.read(name), filename=name)


def router_routes(wheel, dotted, prefix, seen):
    """Routes of the router module `dotted` mounted at `prefix`, nested routers included."""
    if (dotted, prefix) in seen:
        return []
    seen.add((dotted, prefix))
    name = wheel.module_file(dotted)
    if name is None:
        raise Unreadable(f"router module {dotted} not in the wheel")
    tree = wheel.parse(name)
    short = dotted.removeprefix("open_webui.")
    routes = [(m, prefix + p, h) for m, p, h in decorator_routes(tree, "router", short)]
    package = dotted if name.endswith("__init__.py") else dotted.rsplit(".", 1)[0]
    imports = imported_modules(tree, package)
    for alias, sub_prefix in include_calls(tree, "router"):
        routes += router_routes(wheel, imports[alias], prefix + sub_prefix, seen)
    return routes


def socketio_path(wheel):
    tree = wheel.parse("open_webui/socket/main.py")
    for call in ast.walk(tree):
        if isinstance(call, ast.Call):
            p = keyword(call, "socketio_path")
            if p is not None:
                return literal(p, "socket/main.py")
    raise Unreadable("socket/main.py: no socketio_path")


def main():
    wheel = Wheel(sys.argv[1])
    main_tree = wheel.parse("open_webui/main.py")
    imports = imported_modules(main_tree, "open_webui")
    routes = decorator_routes(main_tree, "app", "main")
    prefixes = []
    seen = set()
    for alias, prefix in include_calls(main_tree, "app"):
        routes += router_routes(wheel, imports[alias], prefix, seen)
        prefixes.append(prefix)
    mounts = []
    for call in ast.walk(main_tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "mount"
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "app"
        ):
            mounts.append(literal(call.args[0], f"main.py:{call.lineno}"))
    # The socket.io app mounted at /ws answers on its own path; its upgrade is a GET.
    routes.append(("GET", socketio_path(wheel).rstrip("/") + "/", "socket.main.sio"))
    out = {
        "routes": [
            {"method": m, "path": p, "handler": h}
            for m, p, h in sorted(set(routes), key=lambda r: (r[1], r[0], r[2]))
        ],
        "prefixes": sorted(set(p for p in prefixes if p)),
        "mounts": sorted(set(mounts)),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Unreadable as e:
        sys.exit(f"routes.py: {e}; the route table needs a path the script can read statically")
