import { Link } from '@tanstack/react-router';

export function NotFound() {
  return (
    <div className="state state--empty">
      <h1>Page not found</h1>
      <p>
        <Link to="/">Back to tenants</Link>
      </p>
    </div>
  );
}
