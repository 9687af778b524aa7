// The login form works without this script (a plain form post); the script only carries the page asked
// for (`next`) into the form and shows the server's error, both taken from the query string.

const query = new URLSearchParams(window.location.search);
const next = query.get('next');
if (next) document.getElementById('next').value = next;

const error = query.get('error');
if (error) {
  // created only when there is an error, so a test or a screen reader never finds an empty one
  const message = document.createElement('p');
  message.id = 'login-error';
  message.className = 'login-error';
  message.setAttribute('role', 'alert');
  message.textContent = error;
  document.getElementById('login-form').before(message);
}
