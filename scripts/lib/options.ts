/** Parses a numeric command-line option, or prints the usage and exits with 2. */
export function numberOption(tool: string, usage: string, name: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) {
    console.error(`${tool}: --${name} must be a number >= ${min}, got ${text}\n${usage}`);
    process.exit(2);
  }
  return value;
}
