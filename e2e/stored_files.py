"""What the engine's OPFS store holds of a bundle (web/src/engine/storage-layout.js), read and damaged from the
page through the browser's own OPFS API, as a disk fault or another script of the origin would."""

STORED_FILES = """async (bundleId) => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle("tabllm")).getDirectoryHandle(`bundle-${bundleId}`);
    const files = {};
    for await (const [name, handle] of dir.entries()) {
        if (name.startsWith(".")) continue;  // a record
        const bytes = await (await handle.getFile()).arrayBuffer();
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        files[name] = {
            bytes: bytes.byteLength,
            sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
            verified: await dir.getFileHandle(`.verified-${name}`).then(() => true, () => false),
        };
    }
    return files;
}"""

DAMAGE = """async ({bundleId, name, flip, truncate, remove}) => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle("tabllm")).getDirectoryHandle(`bundle-${bundleId}`);
    if (remove) return dir.removeEntry(name);
    const file = await dir.getFileHandle(name);
    const writable = await file.createWritable({keepExistingData: true});
    if (flip !== undefined) {
        const byte = new Uint8Array(await (await file.getFile()).slice(flip, flip + 1).arrayBuffer());
        await writable.write({type: "write", position: flip, data: Uint8Array.of(byte[0] ^ 0xff)});
    }
    if (truncate !== undefined) await writable.truncate(truncate);
    await writable.close();
}"""


def stored_files(page, bundle_id: str) -> dict[str, dict]:
    """File name -> {bytes, sha256, verified (it has a record)} of what OPFS holds of the bundle."""
    return page.evaluate(STORED_FILES, bundle_id)


def damage(page, bundle_id: str, name: str, *, flip: int | None = None, truncate: int | None = None,
           remove: bool = False):
    """Flip the byte at `flip`, cut the file to `truncate` bytes, or remove it; its record stays."""
    args = {"bundleId": bundle_id, "name": name, "remove": remove}
    args |= {"flip": flip} if flip is not None else {}
    args |= {"truncate": truncate} if truncate is not None else {}
    page.evaluate(DAMAGE, args)
