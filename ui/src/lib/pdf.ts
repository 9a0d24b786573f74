// PDF pages through pdf.js (pdfjs-dist from the npm registry, its legacy build, which
// carries what the WebKitGTK of older supported distributions lacks). Loaded only when a
// PDF is opened, so the app's start does not pay for it.
//
// A manual is untrusted input. The bytes come through IPC from the device's cache and
// go to pdf.js as data: nothing is fetched. pdf.js 5 has no eval code path left (the
// option `isEvalSupported` of 4.x is gone with it; the CSP forbids eval anyway), XFA
// forms and WebAssembly decoders are off (the CSP has no `wasm-unsafe-eval`; pdf.js
// falls back to its JavaScript decoders), and no annotation layer is built, so a link
// or form in a document has nothing to act on: the page is a canvas and a text layer
// of plain spans, and nothing in it reaches the app's commands.
import workerUrl from 'pdfjs-dist/legacy/build/pdf.worker.min.mjs?url';

/** A page's size at 100 % in CSS pixels. */
export interface PageSize {
  width: number;
  height: number;
}

/** An open PDF. */
export interface PdfDoc {
  pageCount: number;
  pageSize(page: number): Promise<PageSize>;
  /** Draw `page` at `scale` into `canvas`, with its text (for selection and search) in `textLayer`. */
  render(page: number, canvas: HTMLCanvasElement, textLayer: HTMLElement, scale: number): Promise<void>;
  /** The page's text in reading order (for search). */
  pageText(page: number): Promise<string>;
  destroy(): Promise<void>;
}

type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
let loaded: Promise<PdfJs> | null = null;

function pdfjs(): Promise<PdfJs> {
  loaded ??= import('pdfjs-dist/legacy/build/pdf.mjs').then((m) => {
    m.GlobalWorkerOptions.workerSrc = workerUrl;
    return m;
  });
  return loaded;
}

/** Open a PDF from its bytes (copied: pdf.js hands its input to the worker). */
export async function openPdf(bytes: Uint8Array): Promise<PdfDoc> {
  const lib = await pdfjs();
  const task = lib.getDocument({
    data: bytes.slice(),
    enableXfa: false,
    useWasm: false,
    disableAutoFetch: true,
    disableStream: true,
    stopAtErrors: false,
    verbosity: lib.VerbosityLevel.ERRORS,
    // Kept for pdf.js 4 builds, which read it; pdf.js 5 has no eval path at all.
    isEvalSupported: false,
  } as Parameters<PdfJs['getDocument']>[0]);
  const doc = await task.promise;
  const texts = new Map<number, string>();
  let rendering: { cancel(): void } | null = null;

  return {
    pageCount: doc.numPages,
    async pageSize(n) {
      const vp = (await doc.getPage(n)).getViewport({ scale: 1 });
      return { width: vp.width, height: vp.height };
    },
    async render(n, canvas, textLayer, scale) {
      rendering?.cancel();
      const page = await doc.getPage(n);
      const viewport = page.getViewport({ scale });
      const ratio = window.devicePixelRatio || 1;
      canvas.width = Math.floor(viewport.width * ratio);
      canvas.height = Math.floor(viewport.height * ratio);
      canvas.style.width = `${Math.floor(viewport.width)}px`;
      canvas.style.height = `${Math.floor(viewport.height)}px`;
      const task = page.render({
        canvas,
        viewport,
        transform: ratio === 1 ? undefined : [ratio, 0, 0, ratio, 0, 0],
      });
      rendering = task;
      try {
        await task.promise;
      } catch (e) {
        if (e instanceof Error && e.name === 'RenderingCancelledException') return;
        throw e;
      } finally {
        if (rendering === task) rendering = null;
      }
      textLayer.replaceChildren();
      textLayer.style.setProperty('--total-scale-factor', String(scale));
      const layer = new lib.TextLayer({
        textContentSource: page.streamTextContent(),
        container: textLayer,
        viewport,
      });
      await layer.render();
    },
    async pageText(n) {
      const known = texts.get(n);
      if (known !== undefined) return known;
      // Read the stream with a reader: `getTextContent` iterates it with `for await`,
      // which WebKitGTK's ReadableStream does not support (found by the real-window test).
      const reader = (await doc.getPage(n)).streamTextContent().getReader();
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const item of value.items) {
          if ('str' in item) text += item.str + (item.hasEOL ? '\n' : '');
        }
      }
      texts.set(n, text);
      return text;
    },
    async destroy() {
      rendering?.cancel();
      await task.destroy();
    },
  };
}
