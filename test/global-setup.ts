// Replaced by the database template set-up once the schema exists.
export default async function setup(): Promise<void> {}
