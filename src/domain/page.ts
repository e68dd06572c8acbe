/** A page of a listing, oldest or newest first as the listing says, and the cursor of the next one. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
