/**
 * The typings a user of the package gets (dist/src/*.d.ts, built with
 * stripInternal): a scratch project that imports 'overlapped' by its package
 * name must type-check the documented calls, and must not see the internal
 * methods (`Overlapped.begin`, `CompletionPort.enqueue`, …) or a way to
 * construct a socket. Compiled with TypeScript against the built package.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The package root, from dist/test/package/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const CONSUMER = `
import {
  CompletionPort,
  EchoServer,
  listenTcp,
  connectTcp,
  Overlapped,
  PipeClient,
  PipeConnection,
  PipeListener,
  PipeServer,
  startEchoServer,
  TcpListener,
  TcpSocket,
  chooseEngine,
  type EngineOption,
} from 'overlapped';

export async function documented(): Promise<void> {
  const byName: EngineOption = 'node';
  const listener = await listenTcp({ port: 0, engine: 'node' });
  await TcpListener.listen({ port: 0, engine: 'uring' });
  await TcpListener.listen({ port: 0, engine: chooseEngine('node').engine });
  await TcpListener.listen({ port: 0 });
  connectTcp({ port: listener.address.port, engine: byName }, new Overlapped());
  TcpSocket.connect({ port: 1 }, new Overlapped());
  await EchoServer.start({ port: 0 });
  await startEchoServer({ port: 0, engine: 'uring', model: 'routines' });
  await PipeServer.start({ name: 'p', engine: 'node' });
  await PipeListener.listen({ path: '/tmp/p.sock' });
  PipeConnection.connect({ path: '/tmp/p.sock' }, new Overlapped());
  await PipeClient.connect('p', { engine: 'uring', timeoutMs: 10 });
}

export function hidden(ov: Overlapped, port: CompletionPort<string>, conn: PipeConnection, socket: TcpSocket): void {
  // @ts-expect-error internal
  ov.begin;
  // @ts-expect-error internal
  ov.finish;
  // @ts-expect-error internal
  ov.settle;
  // @ts-expect-error internal
  port.enqueue;
  // @ts-expect-error internal
  port.dispatch;
  // @ts-expect-error internal
  port.wait;
  // @ts-expect-error internal
  conn.sendControl;
  // @ts-expect-error internal
  conn.closeWithError;
  // @ts-expect-error internal
  socket.operationDone;
  // @ts-expect-error internal
  TcpSocket.fromStream;
  // @ts-expect-error sockets come from accept or connect
  new TcpSocket();
  // @ts-expect-error connections come from accept or connect
  new PipeConnection();
  // @ts-expect-error not an engine
  void listenTcp({ port: 0, engine: 'epoll' });
}
`;

test('the published typings: documented calls compile, internals are hidden', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ovl-types-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'overlapped'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    const file = join(dir, 'consumer.ts');
    writeFileSync(file, CONSUMER);
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      skipLibCheck: false,
      skipDefaultLibCheck: true,
    });
    // The consumer and the package's own .d.ts files; third-party typings are not ours to fix.
    const ours = join(ROOT, 'dist', 'src');
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .filter(
        (d) => d.file === undefined || d.file.fileName === file || d.file.fileName.startsWith(ours),
      );
    const text = diagnostics.map((d) => {
      const where =
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      return `${d.file?.fileName ?? ''}:${where ? where.line + 1 : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    assert.deepEqual(text, [], text.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
