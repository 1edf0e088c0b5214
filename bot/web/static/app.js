// Starts Web Chat against this server: a token from /api/directline/token, then Direct Line over a
// WebSocket (the local Direct Line under /v3/directline, or Azure's when the server says so).
(async function () {
  'use strict';

  const status = document.getElementById('status');
  const fail = (message) => {
    status.textContent = 'The chat could not start: ' + message;
    status.hidden = false;
  };

  if (!window.WebChat) {
    fail('the Web Chat bundle did not load (run `make webchat`).');
    return;
  }

  let session;
  try {
    const response = await fetch('/api/directline/token', { method: 'POST' });
    session = await response.json();
    if (!response.ok) {
      throw new Error((session.error && session.error.message) || 'HTTP ' + response.status);
    }
  } catch (err) {
    fail(err.message);
    return;
  }

  const directLine = window.WebChat.createDirectLine({
    token: session.token,
    domain: session.domain || location.origin + '/v3/directline',
    webSocket: true
  });

  // Greet on join: ask the bot for its welcome as soon as the connection is up.
  const store = window.WebChat.createStore({}, ({ dispatch }) => (next) => (action) => {
    if (action.type === 'DIRECT_LINE/CONNECT_FULFILLED') {
      dispatch({
        type: 'WEB_CHAT/SEND_EVENT',
        payload: { name: 'webchat/join', value: { language: navigator.language } }
      });
    }
    return next(action);
  });

  const title = document.body.dataset.title || 'Help desk';
  const initials = title
    .split(/\s+/)
    .filter(Boolean)
    .slice(-2)
    .map((word) => word[0].toUpperCase())
    .join('');

  window.WebChat.renderWebChat(
    {
      directLine,
      store,
      userID: session.userId,
      locale: navigator.language,
      styleOptions: {
        accent: '#0f6cbd',
        primaryFont: '"Segoe UI", system-ui, -apple-system, "Helvetica Neue", Arial, sans-serif',
        backgroundColor: '#ffffff',
        botAvatarInitials: initials,
        botAvatarBackgroundColor: '#0f6cbd',
        userAvatarInitials: 'You',
        userAvatarBackgroundColor: '#5b6573',
        bubbleBackground: '#f1f4f8',
        bubbleBorderWidth: 0,
        bubbleBorderRadius: 12,
        bubbleNubSize: 0,
        bubbleMaxWidth: 640,
        bubbleFromUserBackground: '#0f6cbd',
        bubbleFromUserTextColor: '#ffffff',
        bubbleFromUserBorderWidth: 0,
        bubbleFromUserBorderRadius: 12,
        bubbleFromUserNubSize: 0,
        sendBoxBorderTop: 'solid 1px #dde3ea',
        sendBoxHeight: 56,
        hideUploadButton: true,
        paddingRegular: 12
      }
    },
    document.getElementById('webchat')
  );

  document.querySelector('#webchat input, #webchat textarea')?.focus();
})();
