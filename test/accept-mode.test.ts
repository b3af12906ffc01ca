import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { acceptModeFor } from '../src/main/accept-mode.ts';

describe('acceptModeFor', () => {
  it.each([
    ['26.6.0', 'linux'],
    ['26.6.0', 'darwin'],
    ['26.6.0', 'win32'],
    ['26.10.3', 'linux'],
    ['27.0.0', 'linux'],
    ['27.0.0', 'darwin'],
    ['27.0.0', 'win32'],
  ])('transfers sockets on Node %s (%s)', (version, platform) => {
    expect(acceptModeFor('auto', version, platform)).toBe('transfer');
  });

  it.each(['26.5.0', '26.0.0', '25.2.1', '24.0.0', '24.21.0', '23.1.0', '22.12.0', '22.20.0'])('uses SO_REUSEPORT on Node %s on Linux', (version) => {
    expect(acceptModeFor('auto', version, 'linux')).toBe('reuseport');
  });

  it.each([
    ['22.11.0', 'linux'],
    ['23.0.0', 'linux'],
    ['20.20.2', 'linux'],
    ['20.20.2', 'darwin'],
    ['24.21.0', 'darwin'],
    ['24.21.0', 'win32'],
    ['26.5.0', 'darwin'],
  ])('refuses Node %s on %s, naming the version', (version, platform) => {
    expect(() => acceptModeFor('auto', version, platform)).toThrow(`this is Node ${version} on ${platform}`);
    expect(() => acceptModeFor('auto', version, platform)).toThrow(/Node >= 26\.6/);
  });

  it("matches package.json's engines: the oldest Node it names runs (on Linux), the one before does not", () => {
    const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
    const [, major, minor] = /^>=(\d+)\.(\d+)$/.exec(engines.node)!;
    expect(acceptModeFor('auto', `${major}.${minor}.0`, 'linux')).toBe('reuseport');
    expect(() => acceptModeFor('auto', `${major}.${Number(minor) - 1}.0`, 'linux')).toThrow();
  });

  it('defaults to auto on the running Node', () => {
    expect(acceptModeFor()).toBe(acceptModeFor('auto', process.versions.node, process.platform));
  });

  it('takes reuseport when asked, where Node could transfer too (Linux only)', () => {
    expect(acceptModeFor('reuseport', '26.10.0', 'linux')).toBe('reuseport');
    expect(acceptModeFor('reuseport', '24.0.0', 'linux')).toBe('reuseport');
    expect(() => acceptModeFor('reuseport', '26.10.0', 'darwin')).toThrow("accept: 'reuseport' needs Linux and Node >= 22.12");
    expect(() => acceptModeFor('reuseport', '22.11.0', 'linux')).toThrow('this is Node 22.11.0 on linux');
  });

  it('takes transfer when asked, and refuses it on Node that cannot transfer', () => {
    expect(acceptModeFor('transfer', '26.6.0', 'darwin')).toBe('transfer');
    expect(() => acceptModeFor('transfer', '24.21.0', 'linux')).toThrow("accept: 'transfer' needs Node >= 26.6 (socket transfer to worker threads); this is Node 24.21.0");
  });
});
